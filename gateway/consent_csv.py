"""Consent CSV in and out: the RingCentral export layouts, streamed row by row.

Import reads either layout by its header:

* ``FROM,TO,STATUS,SOURCE`` (RingCentral's API export; Stopgate's export adds
  ``LAST_MODIFIED_TIME,NOTE`` after these, and reads them back);
* the admin portal layout: ``Internal Party Number, External Party Number, Consent Status,
  Source, Coverage, Campaign Type, Notes, Last Modified Time`` - ``from`` is the internal
  number, ``to`` the external one, and a Coverage of ``Company`` or ``Account`` means ``*``.

A row without a time takes the import time but, like every import, never replaces a newer record.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from gateway.store.base import ConsentChange
from gateway.text import storable
from policy.consent import ConsentRecord, OptStatus, Source, format_time, parse_time
from policy.numbers import (
    InvalidAddress,
    business_key,
    customer_key,
    display_key,
    strict_e164_key,
)

FUTURE_TOLERANCE_US = 300 * 1_000_000
"""Clock skew an imported time may have before it counts as "in the future"."""
EXPORT_HEADER = ("FROM", "TO", "STATUS", "SOURCE", "LAST_MODIFIED_TIME", "NOTE")

_COLUMNS = {
    "from": "from",
    "internalpartynumber": "from",
    "to": "to",
    "externalpartynumber": "to",
    "status": "status",
    "optstatus": "status",
    "consentstatus": "status",
    "source": "source",
    "coverage": "coverage",
    "notes": "note",
    "note": "note",
    "lastmodifiedtime": "time",
    "lastmodified": "time",
}
_STATUSES = {
    "optin": OptStatus.OPT_IN,
    "optedin": OptStatus.OPT_IN,
    "in": OptStatus.OPT_IN,
    "optout": OptStatus.OPT_OUT,
    "optedout": OptStatus.OPT_OUT,
    "out": OptStatus.OPT_OUT,
}
_SOURCES = {s.value.lower(): s for s in Source}
_WHOLE_ACCOUNT = {"company", "account", "all"}


@lru_cache(maxsize=1024)
def _fold(text: str) -> str:
    """Memoised: an import folds every row's status and coverage, spelled the same each time."""
    return "".join(c for c in text.lower() if c.isalnum())


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


def parse_rows(
    lines: Iterable[str], *, region: str, actor: str, now_us: int | None = None
) -> Iterator[ConsentChange | RejectedRow]:
    """Yield a change or a rejection for every data row, in order, holding one row at a time."""
    import_us = now_us if now_us is not None else time.time_ns() // 1000
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
    # A row with a cell for every column reads each field from the last column of its name
    # (as the mapping of a shorter row below keeps it); -1: no such column.
    last = {col: i for i, col in enumerate(columns) if col}
    width = len(columns)
    at = [last.get(name, -1) for name in _FIELDS]
    keys = _Keys(region)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RejectedRow(reader.line_num, f"malformed CSV: {exc}")
            continue
        # One string for the row's checks: blank exactly when every cell is, and storable
        # exactly when every cell is (a NUL or a lone surrogate stays one when joined).
        joined = "".join(row)
        if not joined.strip():
            continue
        if not storable(joined):
            # A NUL, or bytes that were not UTF-8 (read as lone surrogates): no store keeps it.
            yield RejectedRow(reader.line_num, "the row holds a NUL or bytes that are not UTF-8")
            continue
        if len(row) >= width:
            cells = [row[i].strip() if i >= 0 else "" for i in at]
        else:
            fields = {col: cell.strip() for col, cell in zip(columns, row, strict=False) if col}
            cells = [fields.get(name, "") for name in _FIELDS]
        yield _row_change(cells, reader.line_num, keys, actor, import_us)


_FIELDS = ("status", "source", "coverage", "from", "to", "time", "note")
"""The fields of a row, in the order :func:`_row_change` reads them."""


_NUMBER_COLUMNS = frozenset(
    {"to", "number", "phone", "phonenumber", "externalpartynumber", "telephone", "msisdn"}
)


def parse_numbers(lines: Iterable[str], *, region: str) -> Iterator[str | RejectedRow]:
    """A suppression list, one customer key (or rejection) per data row, one row at a time.

    Either one number per line (extra columns ignored; do-not-call extracts and plain lists),
    or CSV with a header naming the number column (``TO``, ``Number``, ``Phone``, ...). A first
    line without a digit is taken as that header."""
    reader = csv.reader(lines)
    column = 0
    first = True
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RejectedRow(reader.line_num, f"malformed CSV: {exc}")
            continue
        if not any(cell.strip() for cell in row):
            continue
        if first:
            first = False
            if not any(c.isdigit() for c in "".join(row)):
                folded = [_fold(name) for name in row]
                named = [i for i, name in enumerate(folded) if name in _NUMBER_COLUMNS]
                if not named:
                    yield RejectedRow(reader.line_num, "header names no number column")
                    return
                column = named[0]
                continue
        try:
            yield customer_key(row[column] if column < len(row) else "", region)
        except InvalidAddress as exc:
            yield RejectedRow(reader.line_num, str(exc))


@lru_cache(maxsize=1024)
def _status(text: str) -> OptStatus | None:
    return _STATUSES.get(_fold(text))


@lru_cache(maxsize=1024)
def _source(text: str) -> Source:
    return _SOURCES.get(text.lower(), Source.API) if text else Source.API


@lru_cache(maxsize=1024)
def _whole_account(coverage: str) -> bool:
    return _fold(coverage) in _WHOLE_ACCOUNT


class _Keys:
    """The keys of one import's numbers. Its business numbers are few and recur on every row:
    they are remembered (a bounded number of them, with the reason of an invalid one). A
    customer number in strict E.164 is its own key; others go to the full canonicaliser."""

    __slots__ = ("_business", "region")
    _REMEMBERED = 4096

    def __init__(self, region: str) -> None:
        self.region = region
        self._business: dict[str, str | InvalidAddress] = {}

    def business(self, raw: str) -> str | InvalidAddress:
        """The key of ``raw``, or why it is none (returned, not raised: it is kept)."""
        key = self._business.get(raw)
        if key is None:
            try:
                key = business_key(raw, self.region, allow_wildcard=True)
            except InvalidAddress as exc:
                key = exc.with_traceback(None)
            if len(self._business) >= self._REMEMBERED:
                self._business.clear()
            self._business[raw] = key
        return key

    def customer(self, raw: str) -> str:
        return strict_e164_key(raw) or customer_key(raw, self.region)


def _row_change(
    cells: list[str], line: int, keys: _Keys, actor: str, import_us: int
) -> ConsentChange | RejectedRow:
    """The change of one row; ``cells`` are its stripped fields in :data:`_FIELDS` order
    (``""`` where the row has none)."""
    status_text, source_text, coverage, from_text, to_text, time_text, note = cells
    status = _status(status_text)
    if status is None:
        return RejectedRow(line, f"unknown status {status_text!r}")
    from_key = "*" if _whole_account(coverage) else keys.business(from_text)
    if isinstance(from_key, InvalidAddress):
        return RejectedRow(line, str(from_key))
    try:
        to_key = keys.customer(to_text)
    except InvalidAddress as exc:
        return RejectedRow(line, str(exc))
    modified_us = import_us
    if time_text:
        try:
            modified_us = parse_time(time_text)
        except ValueError:
            return RejectedRow(line, f"unreadable time {time_text!r}")
        if modified_us > import_us + FUTURE_TOLERANCE_US:
            # A time from the future would outrank every later STOP until it came to pass.
            return RejectedRow(line, f"time {time_text!r} is in the future")
    return ConsentChange(
        from_key, to_key, status, _source(source_text), actor, note or None, modified_us
    )


def export_lines(records: Iterable[ConsentRecord]) -> Iterator[str]:
    """CSV text, one line at a time, header first. Cells that a spreadsheet would run as a
    formula (starting ``= + - @``) are neutralised - except numbers in E.164, which are data."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Iterable[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield line(EXPORT_HEADER)
    for record in records:
        yield line(
            (
                display_key(record.from_key),
                display_key(record.to_key),
                record.status.value,
                record.source.value,
                format_time(record.modified_us),
                neutralise_formula(record.note or ""),
            )
        )


def neutralise_formula(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (starting ``= + - @``, tab, CR) made text."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
