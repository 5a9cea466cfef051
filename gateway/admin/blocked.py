"""The blocked-send log as the console reads it: filters, keyset pages, totals, CSV.

``GET /admin/blocked`` query parameters (all optional):

``from_time`` / ``to_time``  ISO 8601 (``Z`` or an offset; naive means UTC): entries logged at or
                             after ``from_time`` and strictly before ``to_time``
``business``                 a business address in any written form (canonicalised as on sends)
``customer``                 a customer number in any written form
``reason``                   up to 10 reasons (repeat it or give a comma list), e.g.
                             ``opt-out``, ``no-opt-in``, ``would-block:opt-out`` (shadow mode)
``dialect``                  ``twilio`` or ``ringcentral``
``per_page`` / ``page_token``  page size (1..1000, default 50) and a ``nextPageToken`` from an
                             earlier page of the same filter (signed, tied to the filter)
``format``                   ``json`` (default) or ``csv`` (every matching entry, streamed)

Newest first. ``totals`` counts every entry matching the filter (not just the page), per reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

from gateway.consent_csv import neutralise_formula
from gateway.consents_api import decode_page_token, encode_page_token
from gateway.csv_response import stream_csv
from gateway.dialects import DIALECTS
from gateway.errors import BadRequest, InvalidPageToken
from gateway.keys import PAGE_KEY, SETTINGS, STORE
from gateway.metrics import block_reasons
from gateway.store.base import BlockedQuery, BlockedSend
from policy.consent import format_time, parse_time
from policy.numbers import InvalidAddress, business_key, customer_key, display_key

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 1000
EXPORT_PAGE = 5000
MAX_REASON_LENGTH = 40
MAX_REASONS = 10
SHADOW_PREFIX = "would-block:"
_BLOCK_REASONS = block_reasons()
KNOWN_REASONS = _BLOCK_REASONS + tuple(SHADOW_PREFIX + r for r in _BLOCK_REASONS)
DIALECT_NAMES = tuple(d.name for d in DIALECTS)
FILTERS = ("from_time", "to_time", "business", "customer", "reason", "dialect")
CSV_HEADER = (
    "TIME",
    "DIALECT",
    "FROM",
    "TO",
    "REASON",
    "REQUEST_ID",
    "TEXT_LENGTH",
    "TEXT_SHA256",
    "TEXT",
)
_E164 = re.compile(r"\+[0-9]{1,15}")


def time_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise BadRequest(
            "malformed-time", f"{name} must be an ISO 8601 time", parameter=name
        ) from None


def blocked_query(request: web.Request) -> BlockedQuery:
    """The filter of a ``GET /admin/blocked`` request, numbers canonicalised."""
    params = request.query
    region = request.app[SETTINGS].default_region
    from_key = to_key = None
    if params.get("business", "").strip():
        try:
            from_key = business_key(params["business"], region)
        except InvalidAddress as exc:
            raise BadRequest(exc.problem.value, str(exc), parameter="business") from None
    if params.get("customer", "").strip():
        try:
            to_key = customer_key(params["customer"], region)
        except InvalidAddress as exc:
            raise BadRequest(exc.problem.value, str(exc), parameter="customer") from None
    reasons: list[str] = []
    for raw in params.getall("reason", []):
        for value in raw.split(","):
            value = value.strip()
            if not value:
                continue
            if len(value) > MAX_REASON_LENGTH:
                raise BadRequest("malformed-reason", "reason is too long", parameter="reason")
            reasons.append(value)
    if len(reasons) > MAX_REASONS:
        raise BadRequest("malformed-reason", f"at most {MAX_REASONS} reasons", parameter="reason")
    dialect = params.get("dialect", "").strip().lower() or None
    if dialect is not None and dialect not in DIALECT_NAMES:
        raise BadRequest(
            "unknown-dialect",
            f"dialect must be one of {', '.join(DIALECT_NAMES)}",
            parameter="dialect",
        )
    return BlockedQuery(
        from_us=time_param(request, "from_time"),
        to_us=time_param(request, "to_time"),
        from_key=from_key,
        to_key=to_key,
        reasons=tuple(dict.fromkeys(reasons)),
        dialect=dialect,
    )


def _per_page(request: web.Request) -> int:
    raw = request.query.get("per_page", "").strip()
    if not raw:
        return DEFAULT_PER_PAGE
    try:
        per_page = int(raw)
    except ValueError:
        raise BadRequest("malformed-per-page", "per_page must be a number") from None
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadRequest("malformed-per-page", f"per_page must be 1..{MAX_PER_PAGE}")
    return per_page


def _filter_digest(request: web.Request) -> str:
    """Ties a page token to the filter it was issued for."""
    items = sorted((k, v) for k, v in request.query.items() if k in FILTERS)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def entry_json(entry_id: int, entry: BlockedSend) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(entry_id),
        "time": format_time(entry.at_us),
        "dialect": entry.dialect,
        "from": display_key(entry.from_key),
        "to": display_key(entry.to_key),
        "reason": entry.reason,
        "requestId": entry.request_id,
        "textLength": entry.text_length,
        "textSha256": entry.text_sha256,
    }
    if entry.text is not None:
        body["text"] = entry.text
    return body


async def blocked_page(request: web.Request) -> web.Response:
    query = blocked_query(request)
    per_page = _per_page(request)
    key = request.app[PAGE_KEY]
    digest = _filter_digest(request)
    token = request.query.get("page_token", "").strip()
    before_id = None
    if token:
        payload = decode_page_token(key, token, "blocked")
        if payload.get("f") != digest or not isinstance(payload.get("p"), int):
            raise InvalidPageToken()
        before_id = int(payload["p"])
    store = request.app[STORE]
    rows = await store.find_blocked(query, before_id=before_id, limit=per_page + 1)
    page = rows[:per_page]
    totals = await store.blocked_totals(query)
    paging: dict[str, Any] = {"perPage": per_page}
    if token:
        paging["pageToken"] = token
    if len(rows) > per_page:
        paging["nextPageToken"] = encode_page_token(
            key, {"k": "blocked", "f": digest, "p": page[-1][0]}
        )
    return web.json_response(
        {
            "records": [entry_json(entry_id, entry) for entry_id, entry in page],
            "paging": paging,
            "totals": {"count": sum(totals.values()), "byReason": dict(sorted(totals.items()))},
        }
    )


def safe_cell(cell: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (``= + - @`` first): neutralised with a
    leading apostrophe - except a bare E.164 number, which is data (as in the consents export)."""
    return cell if _E164.fullmatch(cell) else neutralise_formula(cell)


def csv_lines(rows: Iterable[tuple[int, BlockedSend]], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_HEADER)
    for _, entry in rows:
        writer.writerow(
            [
                format_time(entry.at_us),
                safe_cell(entry.dialect),
                safe_cell(display_key(entry.from_key)),
                safe_cell(display_key(entry.to_key)),
                safe_cell(entry.reason),
                safe_cell(entry.request_id),
                str(entry.text_length),
                safe_cell(entry.text_sha256),
                safe_cell(entry.text or ""),
            ]
        )
    return buffer.getvalue()


async def blocked_csv(request: web.Request) -> web.StreamResponse:
    """Every entry of the filter, newest first, streamed page by page (constant memory)."""
    query = blocked_query(request)
    store = request.app[STORE]
    # The first page is read before answering, so a store failure is still a clean 503.
    first = await store.find_blocked(query, before_id=None, limit=EXPORT_PAGE)
    return await stream_csv(request, "blocked-sends.csv", _chunks(request, query, first))


async def _chunks(
    request: web.Request, query: BlockedQuery, first: list[tuple[int, BlockedSend]]
) -> AsyncIterator[bytes]:
    page = first
    header = True
    while True:
        yield csv_lines(page, header=header).encode("utf-8", "replace")
        header = False
        if len(page) < EXPORT_PAGE:
            return
        page = await request.app[STORE].find_blocked(
            query, before_id=page[-1][0], limit=EXPORT_PAGE
        )
