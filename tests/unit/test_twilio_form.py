"""The Twilio dialect's form decoder is parse_qsl (keep_blank_values, strict) by another route, and
its encoder urlencode."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.dialects.twilio import encode_form, parse_form


def reference(text: str) -> list[tuple[str, str]]:
    return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))


def outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ValueError:
        return ValueError


FORM_ALPHABET = st.sampled_from(
    [*"ab=&+%2Fz0éA ;\x00", "%2", "%zz", "%e9", "%C3%A9", "%%", "%2B", "%2b", "1"]
)


@given(st.lists(FORM_ALPHABET, max_size=40).map("".join))
def test_any_text_decodes_like_parse_qsl(text: str) -> None:
    assert outcome(parse_form, text) == outcome(reference, text)


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=6))
def test_encoded_forms_round_trip_like_parse_qsl(pairs: list[tuple[str, str]]) -> None:
    text = urlencode(pairs)
    assert parse_form(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "To=%2B16505550111&From=%2B16505550100&Body=Hello+there",
        "To=+16505550111",
        "a=1&&b=2",
        "a=1&",
        "&",
        "=",
        "a",
        "a==b",
        "Body=50%25+off",
        "Body=%E2%9C%93",
        "Body=%ff",
        "To=%2B16505550111&From=%2b16505550100",
        "To=%2B1650%2B5550111",
        "To=%2B%2B",
        "To=%2B",
    ],
)
def test_table(text: str) -> None:
    assert outcome(parse_form, text) == outcome(reference, text)


@given(
    st.lists(
        st.tuples(
            st.text(max_size=12),
            st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40),
        ),
        max_size=5,
    )
)
def test_encode_form_writes_what_urlencode_writes(pairs: list[tuple[str, str]]) -> None:
    try:
        expected = urlencode(pairs).encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            encode_form(pairs)
        return
    assert encode_form(pairs) == expected
