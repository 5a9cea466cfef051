"""The import parser reads every row as the plain reading below does: a model of the rules
(one mapping of column names to stripped cells per row, every number through the memoised
canonicaliser), against which the parser's shortcuts - cells by position for a full row, one
joined string for the blank and storable checks, remembered business keys, strict E.164 without
a parse - must change nothing: the same change or the same numbered rejection, row by row."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator

import hypothesis
from hypothesis import strategies as st

from gateway.consent_csv import (
    _COLUMNS,
    _SOURCES,
    _STATUSES,
    _WHOLE_ACCOUNT,
    FUTURE_TOLERANCE_US,
    RejectedRow,
    _fold,
    parse_rows,
)
from gateway.store.base import ConsentChange
from gateway.text import storable
from policy.consent import Source, parse_time
from policy.numbers import InvalidAddress, business_key, customer_key

NOW_US = 1_800_000_000_000_000
EXAMPLES = int(os.environ.get("STOPGATE_FUZZ_EXAMPLES", "300"))


def model(lines: Iterable[str], region: str) -> Iterator[ConsentChange | RejectedRow]:
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield RejectedRow(1, f"unreadable header: {exc}")
        return
    columns = [_COLUMNS.get(_fold(name)) for name in header]
    missing = {"from", "to", "status"} - set(columns)
    if missing:
        yield RejectedRow(1, f"header lacks {', '.join(sorted(missing))}")
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RejectedRow(reader.line_num, f"malformed CSV: {exc}")
            continue
        line = reader.line_num
        if all(not cell.strip() for cell in row):
            continue
        if not all(storable(cell) for cell in row):
            yield RejectedRow(line, "the row holds a NUL or bytes that are not UTF-8")
            continue
        fields = {}
        for name, cell in zip(columns, row, strict=False):
            if name:
                fields[name] = cell.strip()
        yield model_row(fields, line, region)


def model_row(fields: dict[str, str], line: int, region: str) -> ConsentChange | RejectedRow:
    status = _STATUSES.get(_fold(fields.get("status", "")))
    if status is None:
        return RejectedRow(line, f"unknown status {fields.get('status', '')!r}")
    source_text = fields.get("source", "")
    source = _SOURCES.get(source_text.lower(), Source.API) if source_text else Source.API
    try:
        if _fold(fields.get("coverage", "")) in _WHOLE_ACCOUNT:
            from_key = "*"
        else:
            from_key = business_key(fields.get("from", ""), region, allow_wildcard=True)
        to_key = customer_key(fields.get("to", ""), region)
    except InvalidAddress as exc:
        return RejectedRow(line, str(exc))
    modified_us = NOW_US
    if fields.get("time"):
        try:
            modified_us = parse_time(fields["time"])
        except ValueError:
            return RejectedRow(line, f"unreadable time {fields['time']!r}")
        if modified_us > NOW_US + FUTURE_TOLERANCE_US:
            return RejectedRow(line, f"time {fields['time']!r} is in the future")
    return ConsentChange(
        from_key,
        to_key,
        status,
        source,
        actor="import",
        note=fields.get("note") or None,
        modified_us=modified_us,
    )


NUMBERS = st.sampled_from(
    [
        "+16505550100",
        " +16505550101 ",
        "+442079460018",
        "+4402079460018",
        "+1650555010",
        "(650) 555-0113",
        "１６５０５５５０１１６",
        "whatsapp:+16505550117",
        "12345",
        "ACME",
        "*",
        "",
        "+1 650 555 0114",
        "+16505550100\x00",
        "+1650555\udcff0100",
    ]
)
CELLS = st.one_of(
    NUMBERS,
    st.sampled_from(["OptOut", " opt-out", "OptIn", "Opted In", "", "Recipient", "company"]),
    st.sampled_from(["2026-01-02T03:04:05Z", "2999-01-01T00:00:00Z", "yesterday", "0"]),
    st.sampled_from([" ", "\t", "  "]),
    st.text(max_size=12),
)
HEADERS = st.lists(
    st.sampled_from(
        [
            "FROM",
            "TO",
            "STATUS",
            "SOURCE",
            "LAST_MODIFIED_TIME",
            "NOTE",
            "Internal Party Number",
            "External Party Number",
            "Consent Status",
            "Coverage",
            "Campaign Type",
            "to",
        ]
    ),
    min_size=2,
    max_size=9,
)


def render(cells: list[str]) -> str:
    return ",".join('"' + c.replace('"', '""') + '"' if i % 2 else c for i, c in enumerate(cells))


@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("STOPGATE_FUZZ_RANDOM") != "1",
)
@hypothesis.given(
    header=HEADERS,
    rows=st.lists(st.lists(CELLS, max_size=10), max_size=12),
    region=st.sampled_from(["US", "GB"]),
)
@hypothesis.example(  # blank rows: skipped, not rejected
    header=["FROM", "TO", "STATUS"], rows=[[" ", ""], ["", "\t "], [" "]], region="US"
)
def test_the_parser_reads_every_row_as_the_plain_model_does(
    header: list[str], rows: list[list[str]], region: str
) -> None:
    lines = [render(header) + "\r\n"] + [render(row) + "\r\n" for row in rows]
    parsed = list(parse_rows(lines, region=region, actor="import", now_us=NOW_US))
    assert parsed == list(model(lines, region))


def test_a_strict_layout_file_reads_as_the_model_does() -> None:
    """The common case, many rows: the business keys are remembered across rows."""
    lines = ["FROM,TO,STATUS,SOURCE\r\n"]
    froms = ["+16505550100", "(650) 555-0101", "ACME", "+1650555", "*", "  +16505550102 "]
    for n in range(3_000):
        to = f"+1201{n:07d}" if n % 4 else f"(201) 555-{n % 10_000:04d}"
        lines.append(f"{froms[n % len(froms)]},{to},{'OptOut' if n % 3 else 'OptIn'},Api\r\n")
    parsed = list(parse_rows(lines, region="US", actor="import", now_us=NOW_US))
    assert parsed == list(model(lines, "US"))
    assert sum(isinstance(p, RejectedRow) for p in parsed) == 500  # "+1650555"


def test_the_csv_module_loads_without_the_http_server() -> None:
    """``stopgate consents import`` and ``export`` load this module; aiohttp's import alone
    cost a third of a second of each run's start, so it stays out of it."""
    code = (
        "import sys; import gateway.consent_csv, gateway.events, gateway.store.sqlite; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
