"""The RingCentral-compatible consent API that Stopgate serves itself.

Served at ``/restapi/v2/accounts/{a}/sms/consents``. Records look as in RingCentral's consent
API, ``{from, to, optStatus, source, lastModifiedTime}``; ``from`` may be ``*`` (every
business number). Errors come in RingCentral's error shape with a machine-readable
``reason``. Paging is keyset-based: a ``pageToken`` names the position a page starts after (or
ends before), so pages stay stable under concurrent writes; tokens are signed, so a tampered one
is refused.

Routes: ``PATCH`` (write many; each record validated on its own), ``GET`` (filter + page),
``DELETE`` (remove records; the default applies again), ``GET …/export`` (streamed CSV),
``GET …/history`` (every change, paged), ``POST …/erase`` (a customer's data erased, the
suppression kept). Writes need the admin role; reads admin or auditor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web

from gateway import limits
from gateway.auth import Principal, Role
from gateway.consent_csv import export_lines
from gateway.csv_response import stream_csv
from gateway.dialects import RINGCENTRAL
from gateway.dialects.base import DialectError, ErrorKind
from gateway.erasure import erase
from gateway.errors import BadRequest, InvalidPageToken, StoreUnavailable
from gateway.events import follow_up_for
from gateway.keys import AUTH, ERASURE_KEY, INDEX, METRICS, PAGE_KEY, SETTINGS
from gateway.refusals import refuse, refuse_bad_request
from gateway.store.base import AppliedChange, ConsentChange, HistoryEntry, RecordQuery
from gateway.text import storable
from policy.consent import ConsentRecord, OptStatus, Source, format_time, parse_time
from policy.numbers import InvalidAddress, business_key, customer_key, display_key

BASE = "/restapi/v2/accounts/{account}/sms/consents"
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
EXPORT_PAGE = 5000
EVIDENCE_METHODS = ("keyword", "web-form", "verbal", "point-of-sale", "paper", "ivr", "other")
_EVIDENCE_FIELDS = {"method", "url", "ip", "consentText", "messageId", "collectedAt", "details"}

Handler = Callable[[web.Request, Principal], Any]
T = TypeVar("T")


def record_json(record: ConsentRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": display_key(record.from_key),
        "to": display_key(record.to_key),
        "optStatus": record.status.value,
        "source": record.source.value,
        "lastModifiedTime": format_time(record.modified_us),
    }
    if record.note:
        body["note"] = record.note
    if record.evidence:
        body["evidence"] = json.loads(record.evidence)
    return body


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(entry.id),
        "from": display_key(entry.from_key),
        "to": display_key(entry.to_key),
        "oldStatus": entry.old_status.value if entry.old_status else None,
        "newStatus": entry.new_status.value if entry.new_status else "Deleted",
        "source": entry.source.value,
        "actor": entry.actor,
        "time": format_time(entry.modified_us),
    }
    if entry.note:
        body["note"] = entry.note
    if entry.evidence:
        body["evidence"] = json.loads(entry.evidence)
    return body


# --- page tokens ------------------------------------------------------------------------


def encode_page_token(key: bytes, payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    tag = hmac.new(key, raw, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(tag + raw).decode().rstrip("=")


def decode_page_token(key: bytes, token: str, kind: str) -> dict[str, Any]:
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidPageToken() from None
    tag, raw = blob[:12], blob[12:]
    if len(tag) < 12 or not hmac.compare_digest(
        tag, hmac.new(key, raw, hashlib.sha256).digest()[:12]
    ):
        raise InvalidPageToken()
    try:
        payload = json.loads(raw)
    except ValueError:
        raise InvalidPageToken() from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise InvalidPageToken()
    return payload


# --- parsing ------------------------------------------------------------------------------


def _evidence(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("method") not in EVIDENCE_METHODS:
        raise BadRequest(
            "malformed-evidence",
            f"evidence must be an object whose method is one of {', '.join(EVIDENCE_METHODS)}",
            parameter="evidence",
        )
    unknown = set(raw) - _EVIDENCE_FIELDS
    if unknown:
        raise BadRequest(
            "malformed-evidence",
            f"unknown evidence fields: {', '.join(sorted(unknown))}",
            parameter="evidence",
        )
    if not all(isinstance(v, str) and storable(v) for v in raw.values()):
        raise BadRequest(
            "malformed-evidence",
            "evidence values are text (no NUL, valid Unicode)",
            parameter="evidence",
        )
    return json.dumps(raw, sort_keys=True, separators=(",", ":"))


def _pair(raw: dict[str, Any], region: str) -> tuple[str, str]:
    for name in ("from", "to"):
        if not isinstance(raw.get(name), str):
            raise BadRequest(f"missing-{name}", f"{name} must be a string", parameter=name)
    try:
        from_key = business_key(raw["from"], region, allow_wildcard=True)
    except InvalidAddress as exc:
        raise BadRequest(exc.problem.value, str(exc), parameter="from") from None
    try:
        to_key = customer_key(raw["to"], region)
    except InvalidAddress as exc:
        raise BadRequest(exc.problem.value, str(exc), parameter="to") from None
    return from_key, to_key


def _parse_record(raw: Any, region: str, actor: str) -> ConsentChange:
    """One record of a PATCH, validated as a whole: nothing of it applies unless all of it is
    valid."""
    if not isinstance(raw, dict):
        raise BadRequest("malformed-record", "each record must be an object")
    status = raw.get("optStatus")
    try:
        opt_status = OptStatus(str(status))
    except ValueError:
        raise BadRequest(
            "unknown-opt-status",
            f"optStatus must be OptIn or OptOut, not {status!r}",
            parameter="optStatus",
        ) from None
    source_raw = raw.get("source", Source.API.value)
    try:
        source = Source(source_raw)
    except ValueError:
        raise BadRequest(
            "unknown-source",
            f"source must be one of {', '.join(s.value for s in Source)}, not {source_raw!r}",
            parameter="source",
        ) from None
    from_key, to_key = _pair(raw, region)
    note = raw.get("note")
    if note is not None and not (isinstance(note, str) and storable(note)):
        raise BadRequest(
            "malformed-note", "note must be text (no NUL, valid Unicode)", parameter="note"
        )
    return ConsentChange(
        from_key,
        to_key,
        opt_status,
        source,
        actor=actor,
        note=note,
        evidence=_evidence(raw.get("evidence")),
    )


async def _records_of(request: web.Request) -> list[Any]:
    document = await limits.read_json(request)
    records = document.get("records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not records:
        raise BadRequest("missing-records", "records must be a non-empty list")
    limit = request.app[SETTINGS].max_records_per_call
    if len(records) > limit:
        raise BadRequest(
            "too-many-records",
            f"at most {limit} records per call (max_records_per_call), not {len(records)}",
            status=413,
        )
    return records


def _record_error(position: int, exc: BadRequest) -> dict[str, Any]:
    return {
        "index": position,
        "errorCode": "CMN-101",
        "reason": exc.reason,
        "message": exc.message,
        "parameterName": exc.parameter,
    }


def _each_record(
    records: list[Any], parse: Callable[[Any], T]
) -> tuple[list[T], list[dict[str, Any]]]:
    """Parse each record on its own: the valid ones, and an error (with its index) for each
    of the others."""
    parsed: list[T] = []
    errors: list[dict[str, Any]] = []
    for position, raw in enumerate(records):
        try:
            parsed.append(parse(raw))
        except BadRequest as exc:
            errors.append(_record_error(position, exc))
    return parsed, errors


def _no_valid_record(errors: list[dict[str, Any]], message: str) -> web.Response:
    return web.json_response(
        {"errorCode": "CMN-101", "message": message, "reason": "invalid-records", "errors": errors},
        status=400,
    )


def _store_down() -> web.Response:
    return refuse(
        RINGCENTRAL,
        DialectError(
            ErrorKind.CONSENT_UNAVAILABLE, "store-unavailable", "The consent store is unreachable"
        ),
        "",
    )


def _guarded(role: Role, handler: Handler) -> Callable[[web.Request], Any]:
    """Authenticate, check the role, and translate Stopgate's errors into RingCentral's shape."""

    async def route(request: web.Request) -> web.StreamResponse:
        try:
            principal = await request.app[AUTH].authenticate(request)
            principal.require(role)
            response: web.StreamResponse = await handler(request, principal)
            return response
        except BadRequest as exc:
            return refuse_bad_request(RINGCENTRAL, exc, "")
        except StoreUnavailable:
            return _store_down()

    return route


# --- handlers -----------------------------------------------------------------------------


def _count(request: web.Request, applied: list[AppliedChange]) -> None:
    request.app[METRICS].count_applied(applied)


async def patch_consents(request: web.Request, principal: Principal) -> web.Response:
    region = request.app[SETTINGS].default_region
    changes, errors = _each_record(
        await _records_of(request), lambda raw: _parse_record(raw, region, principal.name)
    )
    if not changes:
        return _no_valid_record(errors, "no record is valid; nothing applied")
    applied = await request.app[INDEX].apply(changes, follow_up_for(request.app[SETTINGS]))
    _count(request, applied)
    body: dict[str, Any] = {"records": [record_json(r.record) for r in applied]}
    if errors:
        body["errors"] = errors
    return web.json_response(body)


async def delete_consents(request: web.Request, principal: Principal) -> web.Response:
    region = request.app[SETTINGS].default_region

    def pair_of(raw: Any) -> tuple[str, str]:
        if not isinstance(raw, dict):
            raise BadRequest("malformed-record", "each record must be an object")
        return _pair(raw, region)

    pairs, errors = _each_record(await _records_of(request), pair_of)
    if not pairs:
        return _no_valid_record(errors, "nothing to delete")
    index = request.app[INDEX]
    try:
        removed = await index.store.delete_records(pairs, principal.name, None)
    finally:
        index.invalidate(pairs)
    body: dict[str, Any] = {"records": [record_json(r) for r in removed]}
    if errors:
        body["errors"] = errors
    return web.json_response(body)


def _query(request: web.Request) -> RecordQuery:
    region = request.app[SETTINGS].default_region
    params = request.query
    try:
        from_keys = tuple(
            business_key(value, region, allow_wildcard=True)
            for raw in params.getall("from", [])
            for value in raw.split(",")
            if value.strip()
        )
    except InvalidAddress as exc:
        raise BadRequest(exc.problem.value, str(exc), parameter="from") from None
    to_key = None
    if params.get("to"):
        try:
            to_key = customer_key(params["to"], region)
        except InvalidAddress as exc:
            raise BadRequest(exc.problem.value, str(exc), parameter="to") from None
    statuses: list[OptStatus] = []
    for raw in params.getall("optStatus", []):
        for value in raw.split(","):
            try:
                statuses.append(OptStatus(value.strip()))
            except ValueError:
                raise BadRequest(
                    "unknown-opt-status", f"unknown optStatus {value!r}", parameter="optStatus"
                ) from None
    times: list[int | None] = []
    for name in ("dateFrom", "dateTo"):
        text = params.get(name)
        try:
            times.append(parse_time(text) if text else None)
        except ValueError:
            raise BadRequest("malformed-time", f"{name} must be ISO 8601", parameter=name) from None
    return RecordQuery(from_keys, to_key, tuple(statuses), times[0], times[1])


def _per_page(request: web.Request) -> int:
    try:
        per_page = int(request.query.get("perPage", DEFAULT_PER_PAGE))
    except ValueError:
        raise BadRequest("malformed-per-page", "perPage must be a number") from None
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadRequest("malformed-per-page", f"perPage must be 1..{MAX_PER_PAGE}")
    return per_page


def _filter_digest(request: web.Request) -> str:
    """Ties a page token to the filters it was issued for."""
    items = sorted((k, v) for k, v in request.query.items() if k not in ("pageToken", "perPage"))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


async def get_consents(request: web.Request, principal: Principal) -> web.Response:
    query = _query(request)
    per_page = _per_page(request)
    key = request.app[PAGE_KEY]
    digest = _filter_digest(request)
    token = request.query.get("pageToken")
    after = before = None
    if token:
        payload = decode_page_token(key, token, "records")
        if payload.get("f") != digest:
            raise InvalidPageToken()
        position = tuple(payload["p"])
        if payload.get("d") == "b":
            before = (str(position[0]), str(position[1]))
        else:
            after = (str(position[0]), str(position[1]))
    store = request.app[INDEX].store
    # One extra row says whether another page exists in the direction of travel.
    rows = await store.list_records(query, after=after, before=before, limit=per_page + 1)
    if before is not None:
        more_before = len(rows) > per_page
        page = rows[-per_page:]
        more_after = True
    else:
        more_after = len(rows) > per_page
        page = rows[:per_page]
        more_before = after is not None
    paging: dict[str, Any] = {"perPage": per_page}
    if token:
        paging["pageToken"] = token
    if page and more_after:
        last = page[-1]
        paging["nextPageToken"] = encode_page_token(
            key, {"k": "records", "f": digest, "d": "a", "p": [last.to_key, last.from_key]}
        )
    if page and more_before:
        first = page[0]
        paging["previousPageToken"] = encode_page_token(
            key, {"k": "records", "f": digest, "d": "b", "p": [first.to_key, first.from_key]}
        )
    return web.json_response({"records": [record_json(r) for r in page], "paging": paging})


async def export_consents(request: web.Request, principal: Principal) -> web.StreamResponse:
    query = _query(request)
    store = request.app[INDEX].store
    # Read the first page before answering, so a store failure is still a clean 503.
    first = await store.list_records(query, after=None, limit=EXPORT_PAGE)
    return await stream_csv(request, "consents.csv", _export_chunks(store, query, first))


async def _export_chunks(
    store: Any, query: RecordQuery, first: list[ConsentRecord]
) -> AsyncIterator[bytes]:
    page = first
    header_sent = False
    while True:
        lines = export_lines(page)
        header = next(lines)
        chunk = "".join(lines)
        yield ((header if not header_sent else "") + chunk).encode()
        header_sent = True
        if len(page) < EXPORT_PAGE:
            return
        last = page[-1]
        page = await store.list_records(
            query, after=(last.to_key, last.from_key), limit=EXPORT_PAGE
        )


async def get_history(request: web.Request, principal: Principal) -> web.Response:
    region = request.app[SETTINGS].default_region
    params = request.query
    to_key = from_key = None
    try:
        if params.get("to"):
            to_key = customer_key(params["to"], region)
        if params.get("from"):
            from_key = business_key(params["from"], region, allow_wildcard=True)
    except InvalidAddress as exc:
        raise BadRequest(exc.problem.value, str(exc)) from None
    per_page = _per_page(request)
    key = request.app[PAGE_KEY]
    digest = _filter_digest(request)
    token = params.get("pageToken")
    after_id = None
    if token:
        payload = decode_page_token(key, token, "history")
        if payload.get("f") != digest or not isinstance(payload.get("p"), int):
            raise InvalidPageToken()
        after_id = int(payload["p"])
    entries = await request.app[INDEX].store.history(
        to_key=to_key, from_key=from_key, after_id=after_id, limit=per_page + 1
    )
    page = entries[:per_page]
    paging: dict[str, Any] = {"perPage": per_page}
    if token:
        paging["pageToken"] = token
    if len(entries) > per_page:
        paging["nextPageToken"] = encode_page_token(
            key, {"k": "history", "f": digest, "p": page[-1].id}
        )
    return web.json_response({"records": [history_json(e) for e in page], "paging": paging})


async def erase_customer(request: web.Request, principal: Principal) -> web.Response:
    document = await limits.read_json(request)
    raw = document.get("to") if isinstance(document, dict) else None
    if not isinstance(raw, str):
        raise BadRequest("missing-to", "to must be the customer's number", parameter="to")
    try:
        to_key = customer_key(raw, request.app[SETTINGS].default_region)
    except InvalidAddress as exc:
        raise BadRequest(exc.problem.value, str(exc), parameter="to") from None
    removed, suppressed = await erase(request.app[INDEX], request.app[ERASURE_KEY], to_key)
    return web.json_response({"erased": removed, "stillBlocked": suppressed})


def add_routes(app: web.Application) -> None:
    app.router.add_patch(BASE, _guarded(Role.ADMIN, patch_consents))
    app.router.add_get(BASE, _guarded(Role.AUDITOR, get_consents))
    app.router.add_delete(BASE, _guarded(Role.ADMIN, delete_consents))
    app.router.add_get(BASE + "/export", _guarded(Role.AUDITOR, export_consents))
    app.router.add_get(BASE + "/history", _guarded(Role.AUDITOR, get_history))
    app.router.add_post(BASE + "/erase", _guarded(Role.ADMIN, erase_customer))
