"""SMS segment counting (DESIGN §5, "Segments").

A message is sent as GSM-7 when every character is in the 3GPP TS 23.038 default
alphabet or its extension table, otherwise as UCS-2 (in practice UTF-16, so
characters outside the BMP travel as surrogate pairs).

=========  ======================  =========================  ========================
encoding   unit                    one segment                per segment when split
=========  ======================  =========================  ========================
GSM-7      septet                  160                        153
UCS-2      UTF-16 code unit        70                         67
=========  ======================  =========================  ========================

An extension character is sent as ESC + code (two septets) and a non-BMP character
as a surrogate pair (two units). Neither pair may be cut between two segments, so a
split message is counted by walking it, not by dividing its length: 152 basic
characters + ``€`` + 152 basic characters is 306 septets, which a division would put in
two segments, but the ``€`` cannot start at septet 153 of the first segment, so it
needs three.

Decisions:

* The empty text counts as **0 segments** (GSM-7, 0 units). It is no SMS payload at
  all (an MMS without text, or a send the carrier will refuse), ``split_segments("")``
  is ``[]``, and ``segments == len(split_segments(text))`` holds for every text. A
  caller that bills a minimum of one segment applies ``max(1, …)`` itself; that is a
  tariff, not a property of the text.
* ``Ç`` (U+00C7) is GSM-7 and ``ç`` (U+00E7) is not. TS 23.038 prints the capital
  glyph at 0x09; Unicode's GSM0338.TXT maps 0x09 to the small letter instead. We
  follow the standard's table, and treating ``ç`` as UCS-2 can only over-estimate
  cost, never send a message that silently renders ``ç`` as ``Ç`` on the handset.
* Only the default alphabet and default extension table are modelled; national
  language shift tables (Turkish, Spanish, Portuguese, …) are not used by US
  carriers. Carrier-side transliteration ("smart encoding" of curly quotes and the
  like) is not modelled either: we count the text as given.
* ESC itself (U+001B) and NBSP (which some decoders show for a lone ESC) are not
  characters a sender can put in the text; both make the message UCS-2.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM7_MULTI",
    "GSM7_SINGLE",
    "UCS2_MULTI",
    "UCS2_SINGLE",
    "Encoding",
    "SegmentCount",
    "count_segments",
    "is_gsm7",
    "split_segments",
    "utf16_units",
]

GSM7_SINGLE = 160
GSM7_MULTI = 153
UCS2_SINGLE = 70
UCS2_MULTI = 67

# TS 23.038 §6.2.1 default alphabet, row by row (0x00-0x7F); 0x1B is the escape to
# the extension table and is deliberately absent.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x10-0x1F (without 0x1B)
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F: 0x24 is the currency sign, '$' lives at 0x02
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F: 0x40 is '¡', '@' lives at 0x00
    "PQRSTUVWXYZÄÖÑ\u00dc\u00a7"  # 0x50-0x5F: Ü § escaped, some fonts fuse the pair
    "¿abcdefghijklmno"  # 0x60-0x6F: no backtick anywhere in the alphabet
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)

# TS 23.038 §6.2.1.1 extension table: each is sent as ESC + code, two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

_HIGH_SURROGATES = range(0xD800, 0xDC00)
_LOW_SURROGATES = range(0xDC00, 0xE000)


class Encoding(enum.StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a text travels as SMS.

    ``units`` is septets for GSM-7 (extension characters and form feed count 2) and
    UTF-16 code units for UCS-2 (non-BMP characters count 2). ``segments`` is the
    number of SMS the walk produced; 0 for the empty text (see the module docstring).
    """

    encoding: Encoding
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 default alphabet or its extension table.

    The empty text is GSM-7.
    """
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units: code points above U+FFFF count 2.

    A lone surrogate code point (possible in a Python ``str``) counts 1.
    """
    if text.isascii():
        return len(text)
    # UTF-16 as the codec counts it: 2 bytes a unit; surrogatepass writes a lone surrogate as
    # the one unit it is.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _gsm7_tokens(text: str) -> list[tuple[str, int]]:
    return [(ch, 2 if ch in GSM7_EXTENSION else 1) for ch in text]


def _ucs2_tokens(text: str) -> list[tuple[str, int]]:
    # A surrogate pair given as two code points (e.g. decoded with "surrogatepass")
    # is still one character on the air and must stay together like a non-BMP one.
    tokens: list[tuple[str, int]] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ord(ch) in _HIGH_SURROGATES and i + 1 < n and ord(text[i + 1]) in _LOW_SURROGATES:
            tokens.append((text[i : i + 2], 2))
            i += 2
            continue
        tokens.append((ch, 2 if ord(ch) > 0xFFFF else 1))
        i += 1
    return tokens


def _walk(text: str) -> tuple[Encoding, int, list[str]]:
    if is_gsm7(text):
        encoding, tokens = Encoding.GSM7, _gsm7_tokens(text)
        single, multi = GSM7_SINGLE, GSM7_MULTI
    else:
        encoding, tokens = Encoding.UCS2, _ucs2_tokens(text)
        single, multi = UCS2_SINGLE, UCS2_MULTI
    units = sum(size for _, size in tokens)
    if units == 0:
        return encoding, 0, []
    if units <= single:
        return encoding, units, [text]

    parts: list[str] = []
    current: list[str] = []
    used = 0
    for chunk, size in tokens:
        # A pair that does not fit whole starts the next segment; the last slot of
        # this one stays empty (that is how the padding costs a segment).
        if used + size > multi:
            parts.append("".join(current))
            current, used = [], 0
        current.append(chunk)
        used += size
    parts.append("".join(current))
    return encoding, units, parts


def count_segments(text: str) -> SegmentCount:
    """Encoding, length in that encoding's units, and SMS segment count of ``text``.

    Up to 160 septets (GSM-7) or 70 UTF-16 units (UCS-2) fit one segment. Beyond that
    each segment carries at most 153 septets or 67 units, and an escape pair or
    surrogate pair is never split: it moves whole to the next segment.
    """
    if GSM7_BASIC.issuperset(text):
        # Every character one septet: the walk packs exactly 153 per split segment, so the
        # count is a division (the common case, without building the segments).
        units = len(text)
        segments = 0 if not units else 1 if units <= GSM7_SINGLE else -(-units // GSM7_MULTI)
        return SegmentCount(encoding=Encoding.GSM7, units=units, segments=segments)
    encoding, units, parts = _walk(text)
    return SegmentCount(encoding=encoding, units=units, segments=len(parts))


def segment_total(text: str) -> int:
    """``count_segments(text).segments``, without building the count for the common text."""
    if GSM7_BASIC.issuperset(text):
        units = len(text)
        return 0 if not units else 1 if units <= GSM7_SINGLE else -(-units // GSM7_MULTI)
    return count_segments(text).segments


def split_segments(text: str) -> list[str]:
    """The segments the walk in :func:`count_segments` produced, in order.

    ``"".join(split_segments(t)) == t`` and ``len(split_segments(t)) ==
    count_segments(t).segments`` for every ``t``; ``[]`` for the empty text.
    """
    return _walk(text)[2]
