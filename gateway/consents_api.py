"""The RingCentral-compatible consent API that Stopgate serves itself.

Served at ``/restapi/v2/accounts/{a}/sms/consents``. Records look as in RingCentral's consent
API, ``{from, to, optStatus, source, lastModifiedTime}``; ``from`` may be ``*`` (every
business number). Errors come in RingCentral's error shape with a machine-readable
``reason``. Paging is keyset-based: a ``pageToken`` names the position after which the page
starts, so pages stay stable under concurrent writes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from aiohttp import hdrs, web

from gateway.dialects import RINGCENTRAL
from gateway.dialects.base import DialectError, ErrorKind
from gateway.errors import BadRequest, InvalidPageToken, StoreUnavailable
from gateway.keys import INDEX, METRICS, SETTINGS
from gateway.refusals import refuse, refuse_bad_request
from gateway.store.base import ConsentChange, PairCursor, RecordQuery
from policy.consent import ConsentRecord, OptStatus, Source, format_time, parse_time
from policy.numbers import InvalidAddress, business_key, customer_key, display_key

BASE = "/restapi/v2/accounts/{account}/sms/consents"
MAX_RECORDS_PER_PATCH = 1000
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000


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
    return body


def _authorize(request: web.Request) -> str:
    """The actor name of a valid admin bearer token; raise 401 otherwise."""
    token = request.app[SETTINGS].admin_token
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, presented = header.partition(" ")
    if (
        token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.reveal().encode())
    ):
        return "admin-token"
    raise BadRequest("unauthorized", "A valid bearer token is required", status=401)


def encode_page_token(cursor: PairCursor) -> str:
    raw = json.dumps(list(cursor), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> PairCursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageToken() from None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise InvalidPageToken()
    return value[0], value[1]


def _parse_record(raw: Any, region: str) -> ConsentChange:
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
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise BadRequest("malformed-note", "note must be a string", parameter="note")
    return ConsentChange(from_key, to_key, opt_status, source, actor="", note=note)


async def patch_consents(request: web.Request) -> web.Response:
    try:
        actor = _authorize(request)
        try:
            document = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed-body", "The body must be JSON") from None
        records = document.get("records") if isinstance(document, dict) else None
        if not isinstance(records, list) or not records:
            raise BadRequest("missing-records", "records must be a non-empty list")
        if len(records) > MAX_RECORDS_PER_PATCH:
            raise BadRequest(
                "too-many-records",
                f"at most {MAX_RECORDS_PER_PATCH} records per call, not {len(records)}",
                status=413,
            )
        region = request.app[SETTINGS].default_region
        changes: list[ConsentChange] = []
        errors: list[dict[str, Any]] = []
        for position, raw in enumerate(records):
            try:
                change = _parse_record(raw, region)
            except BadRequest as exc:
                errors.append(
                    {
                        "index": position,
                        "errorCode": "CMN-101",
                        "reason": exc.reason,
                        "message": exc.message,
                        "parameterName": exc.parameter,
                    }
                )
                continue
            changes.append(
                ConsentChange(
                    change.from_key,
                    change.to_key,
                    change.status,
                    change.source,
                    actor=actor,
                    note=change.note,
                )
            )
        if errors:
            # All or nothing: a batch with a bad record changes nothing, and says which.
            body = {
                "errorCode": "CMN-101",
                "message": f"{len(errors)} of {len(records)} records are invalid; none applied",
                "reason": "invalid-records",
                "errors": errors,
            }
            return web.json_response(body, status=400)
        applied = await request.app[INDEX].apply(changes)
    except BadRequest as exc:
        return refuse_bad_request(RINGCENTRAL, exc, "")
    except StoreUnavailable:
        return _store_down()
    metrics = request.app[METRICS]
    for result in applied:
        if result.applied:
            metrics.consent_changes.labels(
                result.record.source.value, result.record.status.value
            ).inc()
    return web.json_response({"records": [record_json(r.record) for r in applied]})


def _store_down() -> web.Response:
    return refuse(
        RINGCENTRAL,
        DialectError(
            ErrorKind.CONSENT_UNAVAILABLE, "store-unavailable", "The consent store is unreachable"
        ),
        "",
    )


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


async def get_consents(request: web.Request) -> web.Response:
    try:
        _authorize(request)
        query = _query(request)
        try:
            per_page = int(request.query.get("perPage", DEFAULT_PER_PAGE))
        except ValueError:
            raise BadRequest("malformed-per-page", "perPage must be a number") from None
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise BadRequest("malformed-per-page", f"perPage must be 1..{MAX_PER_PAGE}")
        token = request.query.get("pageToken")
        after = decode_page_token(token) if token else None
        # One extra row tells whether a next page exists without a second query.
        rows = await request.app[INDEX].store.list_records(query, after=after, limit=per_page + 1)
    except BadRequest as exc:
        return refuse_bad_request(RINGCENTRAL, exc, "")
    except StoreUnavailable:
        return _store_down()
    page = rows[:per_page]
    paging: dict[str, Any] = {"perPage": per_page}
    if token:
        paging["pageToken"] = token
    if len(rows) > per_page:
        last = page[-1]
        paging["nextPageToken"] = encode_page_token((last.to_key, last.from_key))
    return web.json_response({"records": [record_json(r) for r in page], "paging": paging})


def add_routes(app: web.Application) -> None:
    app.router.add_patch(BASE, patch_consents)
    app.router.add_get(BASE, get_consents)
