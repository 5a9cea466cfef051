"""Suppression lists over HTTP, beside ``stopgate suppressions`` (same import, same effect):

* ``GET /admin/suppressions`` - every published list (admin or auditor).
* ``PUT /admin/suppressions/{name}`` - import or refresh a list from a CSV body (admin): the body
  is streamed and canonicalised in a worker thread (:func:`gateway.suppressions.import_stream`),
  so a million-number refresh neither holds the body in memory nor stalls sends. Query:
  ``kind`` (``internal``, ``dnc``, ``reassigned``), ``asOf`` (the list's date), ``reason``.
* ``DELETE /admin/suppressions/{name}`` - drop a list, releasing its numbers (admin).

Authentication, roles and the error shape are the console's (:mod:`gateway.admin.routes`).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.admin import sessions
from gateway.admin.routes import _guarded
from gateway.auth import Role
from gateway.errors import BadRequest
from gateway.keys import INDEX, SETTINGS, STORE
from gateway.store.base import SuppressionList
from gateway.suppressions import check_list_name, import_stream
from policy.consent import SuppressionKind, format_time, parse_time

SUPPRESSIONS = "/admin/suppressions"
LIST = SUPPRESSIONS + "/{name}"
CSV_TYPES = ("text/csv", "text/plain", "application/octet-stream")
MAX_NOTE = 500


def list_json(listed: SuppressionList) -> dict[str, Any]:
    return {
        "name": listed.name,
        "kind": listed.kind.value,
        "members": listed.members,
        "asOf": format_time(listed.listed_us),
        "importedTime": format_time(listed.imported_us),
        "reason": listed.note,
    }


async def list_lists(request: web.Request, caller: sessions.Caller) -> web.Response:
    lists = await request.app[STORE].suppression_lists()
    return web.json_response({"records": [list_json(listed) for listed in lists]})


def _import_options(request: web.Request) -> tuple[SuppressionKind, int, str | None]:
    raw_kind = request.query.get("kind", SuppressionKind.INTERNAL.value)
    try:
        kind = SuppressionKind(raw_kind.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in SuppressionKind)
        raise BadRequest(
            "invalid-kind", f"kind must be one of {kinds}: {raw_kind!r}", parameter="kind"
        ) from None
    as_of = request.query.get("asOf")
    try:
        listed_us = parse_time(as_of) if as_of else time.time_ns() // 1000
    except ValueError as exc:
        raise BadRequest("invalid-time", f"asOf: {exc}", parameter="asOf") from None
    note = request.query.get("reason") or None
    if note is not None and len(note) > MAX_NOTE:
        raise BadRequest(
            "invalid-reason", f"reason is at most {MAX_NOTE} characters", parameter="reason"
        )
    return kind, listed_us, note


async def put_list(request: web.Request, caller: sessions.Caller) -> web.Response:
    name = check_list_name(request.match_info["name"])
    kind, listed_us, note = _import_options(request)
    if request.content_type not in CSV_TYPES:
        raise BadRequest(
            "unsupported-content-type", "send the list as text/csv (one number a line)", status=415
        )
    outcome = await import_stream(
        request.app[STORE],
        name,
        kind,
        request.content.readany,
        region=request.app[SETTINGS].default_region,
        listed_us=listed_us,
        note=note,
    )
    # The change feed flushes every gateway's cache; this one answers its caller's next send
    # consistently without waiting for it.
    index = request.app[INDEX]
    index.has_suppressions = True
    index.clear()
    refresh = outcome.refresh
    assert refresh is not None
    return web.json_response(
        {
            "list": list_json(refresh.list),
            "added": refresh.added,
            "released": refresh.released,
            "rows": outcome.rows,
            "rejected": outcome.rejected,
            "rejections": [{"line": r.line, "reason": r.reason} for r in outcome.first_rejections],
        }
    )


async def delete_list(request: web.Request, caller: sessions.Caller) -> web.Response:
    name = check_list_name(request.match_info["name"])
    released = await request.app[STORE].drop_suppression_list(name)
    request.app[INDEX].clear()
    return web.json_response({"name": name, "released": released})


def add_routes(app: web.Application) -> None:
    app.router.add_get(SUPPRESSIONS, _guarded(Role.AUDITOR, list_lists))
    app.router.add_put(LIST, _guarded(Role.ADMIN, put_list, write=True))
    app.router.add_delete(LIST, _guarded(Role.ADMIN, delete_list, write=True))
