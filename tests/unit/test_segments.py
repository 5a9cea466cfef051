"""Segment counting: exact tables at every boundary, plus properties of the walk."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    SegmentCount,
    count_segments,
    is_gsm7,
    split_segments,
    utf16_units,
)

GSM = Encoding.GSM7
UCS = Encoding.UCS2

# --- The alphabet itself, written independently as code points by GSM code -------

# TS 23.038 default alphabet, index = GSM code; None marks 0x1B (escape to extension).
_DEFAULT_ALPHABET: list[int | None] = [
    # 0x00-0x0F
    0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5, 0xE5,
    # 0x10-0x1F
    0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, None, 0xC6, 0xE6,
    0xDF, 0xC9,
    # 0x20-0x3F: ASCII except 0x24, which is the currency sign
    *[0xA4 if code == 0x24 else code for code in range(0x20, 0x40)],
    # 0x40-0x5F
    0xA1, *range(0x41, 0x5B), 0xC4, 0xD6, 0xD1, 0xDC, 0xA7,
    # 0x60-0x7F
    0xBF, *range(0x61, 0x7B), 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
]  # fmt: skip

# TS 23.038 extension table: GSM code after ESC -> code point.
_EXTENSION = {
    0x0A: 0x0C, 0x14: 0x5E, 0x28: 0x7B, 0x29: 0x7D, 0x2F: 0x5C,
    0x3C: 0x5B, 0x3D: 0x7E, 0x3E: 0x5D, 0x40: 0x7C, 0x65: 0x20AC,
}  # fmt: skip


def test_basic_table_matches_23038_by_code() -> None:
    assert len(_DEFAULT_ALPHABET) == 128
    expected = {chr(cp) for cp in _DEFAULT_ALPHABET if cp is not None}
    assert expected == GSM7_BASIC
    assert len(GSM7_BASIC) == 127


def test_extension_table_matches_23038() -> None:
    assert {chr(cp) for cp in _EXTENSION.values()} == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


# --- is_gsm7 / utf16_units ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("Hello, world!", True, id="ascii"),
        pytest.param("@$£¥¤§¡¿_", True, id="symbols-in-basic"),
        pytest.param("é è ù ì ò à É", True, id="grave-and-acute-in-basic"),
        pytest.param("ñ Ñ ü Ü ä Ä ö Ö å Å ø Ø æ Æ ß", True, id="nordic-german-spanish"),
        pytest.param("Ç", True, id="capital-c-cedilla-0x09"),
        pytest.param("ΔΦΓΛΩΠΨΣΘΞ", True, id="greek-capitals"),
        pytest.param("^{}\\[~]|€\f", True, id="extension-table"),
        pytest.param("line\r\nbreaks\n", True, id="cr-lf"),
        pytest.param("ç", False, id="small-c-cedilla"),
        pytest.param("`", False, id="backtick"),
        pytest.param("á", False, id="a-acute"),
        pytest.param("¿Cómo estás?", False, id="spanish-acute-vowels"),
        pytest.param("Α", False, id="greek-capital-alpha-looks-latin"),
        pytest.param("α", False, id="greek-small"),
        pytest.param("\t", False, id="tab"),
        pytest.param("\x1b", False, id="raw-escape"),
        pytest.param("\u00a0", False, id="nbsp"),
        pytest.param("“quoted”", False, id="curly-quotes"),
        pytest.param("中文", False, id="chinese"),
        pytest.param("😀", False, id="emoji"),
        pytest.param("$", True, id="dollar-0x02"),
        pytest.param("¢", False, id="cent"),
    ],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("abc", 3),
        ("ç中", 2),
        ("😀", 2),
        ("a😀b", 4),
        ("👍🏽", 4),  # thumbs up + skin-tone modifier: two non-BMP code points
        ("\ud83d", 1),  # lone surrogate in a Python str
    ],
)
def test_utf16_units(text: str, units: int) -> None:
    assert utf16_units(text) == units


@given(st.text())
def test_utf16_units_counts_two_for_each_code_point_above_the_bmp(text: str) -> None:
    assert utf16_units(text) == len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# --- count_segments: exact table ---------------------------------------------------

A = "a"
C = "ç"  # a one-unit UCS-2 character
E = "😀"  # two UTF-16 units

COUNT_TABLE = [
    # id, text, encoding, units, segments
    ("empty", "", GSM, 0, 0),
    ("one-char", "a", GSM, 1, 1),
    ("gsm-159", A * 159, GSM, 159, 1),
    ("gsm-160", A * 160, GSM, 160, 1),
    ("gsm-161", A * 161, GSM, 161, 2),
    ("gsm-306", A * 306, GSM, 306, 2),
    ("gsm-307", A * 307, GSM, 307, 3),
    ("gsm-459", A * 459, GSM, 459, 3),
    ("gsm-460", A * 460, GSM, 460, 4),
    ("gsm-accents", "Café à Malmö, señor Müller: £5 or ¥9", GSM, 36, 1),
    ("gsm-capital-c-cedilla", "ÇA VA", GSM, 5, 1),
    ("euro-is-2", "€", GSM, 2, 1),
    ("form-feed-is-2", "\f", GSM, 2, 1),
    ("all-extension", "^{}\\[~]|€\f", GSM, 20, 1),
    ("ext-80-fills-160", "€" * 80, GSM, 160, 1),
    ("ext-80-plus-1", "€" * 80 + A, GSM, 161, 2),
    ("ext-last-fits-160", A * 158 + "€", GSM, 160, 1),
    ("ext-last-overflows-160", A * 159 + "€", GSM, 161, 2),
    ("form-feed-overflows-160", A * 159 + "\f", GSM, 161, 2),
    ("152-plus-euro-fits-one", A * 152 + "€", GSM, 154, 1),
    ("152-plus-euro-plus-7", A * 152 + "€" + A * 7, GSM, 161, 2),
    # Division says 2 (306/153); the euro cannot straddle 153/154, so 3.
    ("euro-straddles-153", A * 152 + "€" + A * 152, GSM, 306, 3),
    ("euro-at-153-exact", A * 151 + "€" + A * 153, GSM, 306, 2),
    ("ucs2-chinese", "你好", UCS, 2, 1),
    ("ucs2-backtick", "`code`", UCS, 6, 1),
    ("ucs2-small-c-cedilla", "français", UCS, 8, 1),
    ("ucs2-emoji", E, UCS, 2, 1),
    ("ucs2-69", C * 69, UCS, 69, 1),
    ("ucs2-70", C * 70, UCS, 70, 1),
    ("ucs2-71", C * 71, UCS, 71, 2),
    ("ucs2-134", C * 134, UCS, 134, 2),
    ("ucs2-135", C * 135, UCS, 135, 3),
    ("ucs2-201", C * 201, UCS, 201, 3),
    ("ucs2-202", C * 202, UCS, 202, 4),
    ("emoji-35-fills-70", E * 35, UCS, 70, 1),
    ("emoji-35-plus-1", E * 35 + A, UCS, 71, 2),
    ("emoji-last-fits-70", C * 68 + E, UCS, 70, 1),
    ("emoji-last-overflows-70", C * 69 + E, UCS, 71, 2),
    # Division says 2 (134/67); the emoji cannot straddle 67/68, so 3.
    ("emoji-straddles-67", C * 66 + E + C * 66, UCS, 134, 3),
    ("emoji-at-67-exact", C * 65 + E + C * 67, UCS, 134, 2),
    ("emoji-67-all-pairs", E * 67, UCS, 134, 3),
    ("gsm-160-plus-one-ucs2", A * 159 + C, UCS, 160, 3),
    ("ext-is-one-unit-in-ucs2", "€" * 70 + C, UCS, 71, 2),
    ("ext-80-turned-ucs2", "€" * 80 + C, UCS, 81, 2),
    ("emoji-turns-gsm-to-ucs2", "Thanks! " + E, UCS, 10, 1),
    ("skin-tone-emoji", "👍🏽", UCS, 4, 1),
    ("explicit-surrogate-pair", C * 66 + "\ud83d\ude00" + C * 66, UCS, 134, 3),
]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [pytest.param(*row[1:], id=row[0]) for row in COUNT_TABLE],
)
def test_count_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    assert count_segments(text) == SegmentCount(encoding, units, segments)


# --- split_segments: where the walk cuts ------------------------------------------

SPLIT_TABLE = [
    # id, text, lengths of the segments in code points (an emoji is 1 code point, 2 units)
    ("empty", "", []),
    ("single", A * 160, [160]),
    ("gsm-two", A * 161, [153, 8]),
    ("gsm-three", A * 307, [153, 153, 1]),
    ("euro-pushed-to-next", A * 152 + "€" + A * 152, [152, 152, 1]),
    ("euro-ends-segment", A * 151 + "€" + A * 153, [152, 153]),
    ("ucs2-two", C * 71, [67, 4]),
    ("emoji-pushed-to-next", C * 66 + E + C * 66, [66, 66, 1]),
    ("emoji-ends-segment", C * 65 + E + C * 67, [66, 67]),
    ("emoji-only", E * 67, [33, 33, 1]),
    ("explicit-surrogate-pair-kept", C * 66 + "\ud83d\ude00" + C * 3, [66, 5]),
]


@pytest.mark.parametrize(
    ("text", "lengths"),
    [pytest.param(*row[1:], id=row[0]) for row in SPLIT_TABLE],
)
def test_split_segments(text: str, lengths: list[int]) -> None:
    parts = split_segments(text)
    assert [len(p) for p in parts] == lengths
    assert "".join(parts) == text


def test_straddling_euro_opens_the_next_segment() -> None:
    parts = split_segments(A * 152 + "€" + A * 152)
    assert parts[0] == A * 152
    assert parts[1].startswith("€")


def test_straddling_emoji_opens_the_next_segment() -> None:
    parts = split_segments(C * 66 + E + C * 66)
    assert parts[0] == C * 66
    assert parts[1].startswith(E)


# --- Properties ---------------------------------------------------------------------

_GSM_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)
_NON_GSM = ["ç", "`", "á", "中", "“", "\t", "😀", "👍", "🏽", "𝄞"]

gsm_text = st.text(alphabet=st.sampled_from(_GSM_CHARS), max_size=500)
# Mostly GSM with some extension characters and occasional UCS-2 ones, long enough to
# cross several segment boundaries; plus arbitrary Unicode for breadth.
mixed_text = st.one_of(
    st.text(alphabet=st.sampled_from(["a", "€", "\f", "^", *_NON_GSM]), max_size=450),
    st.text(alphabet=st.sampled_from(_GSM_CHARS + _NON_GSM), max_size=450),
    st.text(max_size=300),
)


def _unit_sizes(segment: str, encoding: Encoding) -> list[int]:
    """Units per code point, computed independently of the module under test."""
    if encoding is Encoding.GSM7:
        return [2 if ch in "^{}\\[~]|€\f" else 1 for ch in segment]
    return [len(ch.encode("utf-16-le", "surrogatepass")) // 2 for ch in segment]


def _units(segment: str, encoding: Encoding) -> int:
    return sum(_unit_sizes(segment, encoding))


@given(mixed_text)
@settings(max_examples=400)
def test_split_rejoins_to_the_text(text: str) -> None:
    assert "".join(split_segments(text)) == text


@given(mixed_text)
@settings(max_examples=400)
def test_segments_equals_number_of_parts(text: str) -> None:
    parts = split_segments(text)
    assert count_segments(text).segments == len(parts)
    assert all(parts)


@given(mixed_text)
@settings(max_examples=400)
def test_units_match_an_independent_count(text: str) -> None:
    count = count_segments(text)
    assert count.units == _units(text, count.encoding)
    if count.encoding is Encoding.UCS2:
        assert count.units == len(text.encode("utf-16-le", "surrogatepass")) // 2


@given(mixed_text)
@settings(max_examples=400)
def test_no_segment_exceeds_its_capacity(text: str) -> None:
    count = count_segments(text)
    parts = split_segments(text)
    single, multi = (160, 153) if count.encoding is Encoding.GSM7 else (70, 67)
    capacity = single if len(parts) == 1 else multi
    for part in parts:
        assert _units(part, count.encoding) <= capacity


@given(mixed_text)
@settings(max_examples=400)
def test_no_segment_ends_inside_a_surrogate_pair(text: str) -> None:
    for part in split_segments(text):
        raw = part.encode("utf-16-le", "surrogatepass")
        last = int.from_bytes(raw[-2:], "little")
        assert not 0xD800 <= last < 0xDC00
        first = int.from_bytes(raw[:2], "little")
        assert not 0xDC00 <= first < 0xE000


@given(gsm_text)
@settings(max_examples=400)
def test_no_escape_pair_is_split(text: str) -> None:
    # Encode each segment the way an SMSC would (ESC 0x1B before an extension
    # character): every segment must encode on its own and stay within 153 septets.
    parts = split_segments(text)
    if len(parts) < 2:
        return
    for part in parts:
        septets: list[int] = []
        for ch in part:
            if ch in GSM7_EXTENSION:
                septets += [0x1B, 0]
            else:
                septets.append(1)
        assert len(septets) <= 153
        assert septets[-1] != 0x1B


@given(mixed_text)
@settings(max_examples=400)
def test_walk_is_greedy(text: str) -> None:
    # A segment is only closed when the next character does not fit in it, so the
    # walk never costs more segments than pairs force it to.
    count = count_segments(text)
    parts = split_segments(text)
    if len(parts) < 2:
        return
    multi = 153 if count.encoding is Encoding.GSM7 else 67
    for part, following in itertools.pairwise(parts):
        next_size = _unit_sizes(following, count.encoding)[0]
        assert _units(part, count.encoding) + next_size > multi


@given(mixed_text)
@settings(max_examples=400)
def test_segment_count_bounds(text: str) -> None:
    count = count_segments(text)
    if count.segments <= 1:
        return
    multi = 153 if count.encoding is Encoding.GSM7 else 67
    # Each segment loses at most one unit to a pair that did not fit.
    assert math.ceil(count.units / multi) <= count.segments
    assert count.segments <= math.ceil(count.units / (multi - 1))


@given(gsm_text, st.sampled_from(_NON_GSM), st.integers(min_value=0, max_value=500))
def test_one_non_gsm_character_makes_it_ucs2(text: str, intruder: str, at: int) -> None:
    assert count_segments(text).encoding is Encoding.GSM7
    at = min(at, len(text))
    assert count_segments(text[:at] + intruder + text[at:]).encoding is Encoding.UCS2


@given(mixed_text, mixed_text)
@settings(max_examples=400)
def test_appending_never_reduces_segments(text: str, more: str) -> None:
    assert count_segments(text + more).segments >= count_segments(text).segments


@given(mixed_text)
def test_empty_only_when_zero_segments(text: str) -> None:
    assert (count_segments(text).segments == 0) is (text == "")
