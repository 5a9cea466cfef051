"""The suppression-list parser (``gateway.consent_csv.parse_numbers``) under hostile input.

Whatever the lines hold, it yields customer keys or rejections with a line number, never raises,
and never yields a key the canonicaliser would not give for that row's number."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.consent_csv import RejectedRow, parse_numbers
from policy.numbers import InvalidAddress, customer_key

NUMBERISH = st.text(alphabet="0123456789+-() .tel:\u00a0\uff10\uff11", max_size=20)
CELL = st.one_of(NUMBERISH, st.text(max_size=20))
ROW = st.lists(CELL, min_size=0, max_size=4)
HEADER = st.sampled_from(["", "TO", "Number,Name", "name,phone", "x,y", "\ufeffTO"])


def lines_of(text: str) -> list[str]:
    return io.StringIO(text, newline="").readlines()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_keys_or_numbered_rejections(text: str) -> None:
    count = len(lines_of(text))
    for item in parse_numbers(lines_of(text), region="US"):
        if isinstance(item, RejectedRow):
            assert 1 <= item.line <= max(count, 1)
            assert item.reason
        else:
            assert customer_key(item, "US") == item  # keys are canonical, so idempotent


@settings(max_examples=300, deadline=None)
@given(HEADER, st.lists(ROW, max_size=12))
def test_csv_rows_key_exactly_what_the_canonicaliser_keys(
    header: str, rows: list[list[str]]
) -> None:
    def quoted(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"'

    body = "".join(",".join(quoted(c) for c in row) + "\n" for row in rows)
    text = (header + "\n" if header else "") + body
    keys = [item for item in parse_numbers(lines_of(text), region="US") if isinstance(item, str)]
    for key in keys:
        try:
            assert customer_key(key, "US") == key
        except InvalidAddress:  # pragma: no cover - a yielded key is always valid
            raise AssertionError(f"yielded an invalid key {key!r}") from None
