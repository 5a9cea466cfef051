"""RingCentral's SMS consent API, as the simulator keeps it: ``PATCH`` and ``GET
/restapi/v2/accounts/{account}/sms/consents``. Enough for a gateway that pushes its own changes
to the carrier (records keyed by from/to, newest write wins; no paging beyond one page)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.carriersim.rc_api import bearer_session, read_json_object
from gateway.carriersim.state import SIM_STATE
from gateway.carriersim.wire import json_reply, rc_invalid_parameter

_STATUSES = ("OptIn", "OptOut")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def patch_consents(request: web.Request) -> web.Response:
    session = bearer_session(request)
    if isinstance(session, web.Response):
        return session
    document = await read_json_object(request)
    if isinstance(document, web.Response):
        return document
    records = document.get("records")
    if not isinstance(records, list) or not records:
        return rc_invalid_parameter("records")
    store = request.app[SIM_STATE].rc_consents
    accepted: list[dict[str, Any]] = []
    for record in records:
        if not isinstance(record, dict):
            return rc_invalid_parameter("records")
        sender, recipient, status = record.get("from"), record.get("to"), record.get("optStatus")
        if not isinstance(sender, str) or not isinstance(recipient, str):
            return rc_invalid_parameter("from" if not isinstance(sender, str) else "to")
        if status not in _STATUSES:
            return rc_invalid_parameter("optStatus")
        entry = {
            "from": sender,
            "to": recipient,
            "optStatus": status,
            "source": str(record.get("source") or "Api"),
            "lastModifiedTime": _now(),
        }
        store[(sender, recipient)] = entry
        accepted.append(entry)
    return json_reply({"records": accepted}, provider="ringcentral")


async def get_consents(request: web.Request) -> web.Response:
    session = bearer_session(request)
    if isinstance(session, web.Response):
        return session
    senders = set(request.query.getall("from", []))
    statuses = set(request.query.getall("optStatus", []))
    records = [
        entry
        for entry in request.app[SIM_STATE].rc_consents.values()
        if (not senders or entry["from"] in senders)
        and (not statuses or entry["optStatus"] in statuses)
    ]
    return json_reply(
        {"records": records, "paging": {"perPage": len(records)}}, provider="ringcentral"
    )


def add_routes(router: web.UrlDispatcher) -> None:
    path = "/restapi/v2/accounts/{account_id}/sms/consents"
    router.add_patch(path, patch_consents)
    router.add_get(path, get_consents)
