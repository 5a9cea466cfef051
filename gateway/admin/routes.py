"""The compliance console's routes (register with :func:`add_routes` before the carrier
catch-all).

Page and assets (no authentication; they hold no data, and every asset is served from this
package - no CDN):

* ``GET /admin/`` - the page; ``GET /admin/static/console.js``, ``…/console.css``.

Session (see :mod:`gateway.admin.sessions`):

* ``POST /admin/session`` ``{"token": "…"}`` - sign in; sets the session cookie, answers the
  principal and the session's CSRF token. ``GET /admin/session`` - who is signed in.
  ``DELETE /admin/session`` - sign out.

Data (a bearer token or the session cookie; admin or auditor read, admin writes):

* ``GET /admin/blocked`` - the blocked-send log (:mod:`gateway.admin.blocked`), JSON or CSV.
* ``GET /admin/stats/daily`` - blocked sends and opt-outs per UTC day, for the chart.
* ``GET /admin/consents``, ``…/history``, ``…/export`` and ``PATCH /admin/consents`` - the
  consents API's own handlers (:mod:`gateway.consents_api`: same parameters, same answers), behind
  the console's authentication; a PATCH from the console needs a non-empty ``note`` on every
  record.

Errors of these routes come in Stopgate's own shape ``{"error": {"reason", "message"}}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from gateway import consents_api
from gateway.admin import blocked, sessions
from gateway.auth import Principal, Role
from gateway.errors import BadRequest, StoreUnavailable
from gateway.keys import AUTH, STORE
from gateway.store.base import DAY_US, ConsoleSession
from policy.consent import format_time

PAGE = "/admin/"
STATIC = "/admin/static/"
SESSION = "/admin/session"
BLOCKED = "/admin/blocked"
DAILY = "/admin/stats/daily"
CONSENTS = "/admin/consents"
DEFAULT_DAYS = 30
MAX_DAYS = 400

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        # Chromium then refuses every HTML-string sink (innerHTML & co.) outright.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # "same-origin", not "no-referrer": the latter makes browsers send "Origin: null" on the
    # page's own writes, which the origin check must then refuse.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
ASSETS: dict[str, tuple[str, str]] = {
    PAGE: ("index.html", "text/html"),
    STATIC + "console.js": ("console.js", "text/javascript"),
    STATIC + "console.css": ("console.css", "text/css"),
}

Handler = Callable[[web.Request, sessions.Caller], Awaitable[web.StreamResponse]]


def error_response(reason: str, message: str, status: int) -> web.Response:
    return web.json_response(
        {"error": {"reason": reason, "message": message}},
        status=status,
        headers={"Cache-Control": "no-store"},
    )


def _guarded(role: Role, handler: Handler, *, write: bool = False) -> Any:
    """Authenticate (bearer or session), check the role (and, for a cookie write, CSRF and
    origin), and render Stopgate's errors in its own shape."""

    async def route(request: web.Request) -> web.StreamResponse:
        try:
            caller = await sessions.caller(request, role, write=write)
            response = await handler(request, caller)
        except BadRequest as exc:
            return error_response(exc.reason, exc.message, exc.status)
        except StoreUnavailable:
            return error_response("store-unavailable", "The consent store is unreachable", 503)
        if not response.prepared:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return route


# --- page and assets ----------------------------------------------------------------------


def _asset_route(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = resources.files("gateway.admin").joinpath("static", name).read_bytes()

    async def serve(request: web.Request) -> web.Response:
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-store" if name.endswith(".html") else "no-cache"
        return response

    return serve


# --- session ------------------------------------------------------------------------------


def _session_json(principal: Principal, session: ConsoleSession | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": principal.name,
        "role": principal.role.value,
        "canWrite": principal.role is Role.ADMIN,
        "reasons": list(blocked.KNOWN_REASONS),
        "dialects": list(blocked.DIALECT_NAMES),
    }
    if session is not None:
        body["csrfToken"] = session.csrf_token
        body["expiresAt"] = format_time(session.expires_us)
    return body


async def sign_in(request: web.Request) -> web.Response:
    try:
        sessions.check_origin(request, required=False)
        if request.content_type != "application/json":
            raise BadRequest("unsupported-content-type", "sign in with a JSON body", status=415)
        try:
            document = await request.json()
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError):
            raise BadRequest("malformed-body", "The body must be JSON") from None
        token = document.get("token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise BadRequest("missing-token", "token must be a bearer token", parameter="token")
        token = token.strip()
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
            # No header could carry it, so no bearer token is like it (and it must not reach the
            # RingCentral check as a header).
            raise BadRequest("unauthorized", "the bearer token is not valid here", status=401)
        principal = await request.app[AUTH].authenticate_token(token)
        session, session_id = await sessions.open_session(request, principal)
        response = web.json_response(
            _session_json(principal, session), headers={"Cache-Control": "no-store"}
        )
        sessions.set_cookie(request, response, session_id)
        return response
    except BadRequest as exc:
        return error_response(exc.reason, exc.message, exc.status)
    except StoreUnavailable:
        return error_response("store-unavailable", "The consent store is unreachable", 503)


async def who_am_i(request: web.Request, caller: sessions.Caller) -> web.Response:
    return web.json_response(_session_json(caller.principal, caller.session))


async def sign_out(request: web.Request) -> web.Response:
    """Ends the cookie's session. With a live session this is a write (CSRF and origin are
    checked); without one there is nothing to protect and the cookie is just cleared."""
    try:
        session = await sessions.current_session(request)
        if session is not None:
            await sessions.caller(request, Role.AUDITOR, write=True)
        response = web.Response(status=204, headers={"Cache-Control": "no-store"})
        await sessions.close_session(request, response)
        return response
    except BadRequest as exc:
        return error_response(exc.reason, exc.message, exc.status)
    except StoreUnavailable:
        return error_response("store-unavailable", "The consent store is unreachable", 503)


# --- data ---------------------------------------------------------------------------------


async def blocked_log(request: web.Request, caller: sessions.Caller) -> web.StreamResponse:
    output = request.query.get("format", "json").strip().lower()
    if output == "csv":
        return await blocked.blocked_csv(request)
    if output != "json":
        raise BadRequest("unknown-format", "format must be json or csv", parameter="format")
    return await blocked.blocked_page(request)


def _day_bounds(request: web.Request) -> tuple[int, int]:
    now_us = time.time_ns() // 1000
    to_us = blocked.time_param(request, "to_time")
    to_us = now_us if to_us is None else to_us
    from_us = blocked.time_param(request, "from_time")
    from_us = to_us - DEFAULT_DAYS * DAY_US if from_us is None else from_us
    first = from_us // DAY_US
    last = -(-to_us // DAY_US)  # the day to_time falls in is drawn whole
    if last <= first:
        raise BadRequest("malformed-time", "to_time must be after from_time", parameter="to_time")
    if last - first > MAX_DAYS:
        raise BadRequest("range-too-long", f"at most {MAX_DAYS} days", parameter="from_time")
    try:
        format_time(first * DAY_US)
        format_time((last - 1) * DAY_US)
    except ValueError:
        raise BadRequest(
            "malformed-time", "the days lie outside the years 1-9999", parameter="from_time"
        ) from None
    return first, last


async def daily(request: web.Request, caller: sessions.Caller) -> web.Response:
    first, last = _day_bounds(request)
    found = {
        a.day: a
        for a in await request.app[STORE].daily_activity(
            from_us=first * DAY_US, to_us=last * DAY_US
        )
    }
    days = []
    for day in range(first, last):
        activity = found.get(day)
        days.append(
            {
                "date": format_time(day * DAY_US)[:10],
                "blocked": activity.blocked if activity else 0,
                "optOuts": activity.opted_out if activity else 0,
            }
        )
    return web.json_response({"days": days})


def _consents(handler: Callable[[web.Request, Principal], Any]) -> Handler:
    """A consents API handler (same parameters, same answers) behind the console's auth."""

    async def run(request: web.Request, caller: sessions.Caller) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request, caller.principal)
        return response

    return run


async def write_consents(request: web.Request, caller: sessions.Caller) -> web.StreamResponse:
    """``PATCH`` of the consents API, with a note required on every record (a change made by
    hand says why). Source ``Api``, actor the signed-in principal."""
    try:
        document = await request.json()
    except (ValueError, UnicodeDecodeError, LookupError, RecursionError):
        raise BadRequest("malformed-body", "The body must be JSON") from None
    records = document.get("records") if isinstance(document, dict) else None
    if isinstance(records, list):
        for record in records:
            note = record.get("note") if isinstance(record, dict) else None
            if not isinstance(note, str) or not note.strip():
                raise BadRequest(
                    "missing-note",
                    "a change made from the console needs a note saying why",
                    parameter="note",
                )
    response: web.StreamResponse = await consents_api.patch_consents(request, caller.principal)
    return response


def add_routes(app: web.Application) -> None:
    """Register the console (before the carrier catch-all)."""
    for path, (name, content_type) in ASSETS.items():
        app.router.add_get(path, _asset_route(name, content_type))
    app.router.add_post(SESSION, sign_in)
    app.router.add_get(SESSION, _guarded(Role.AUDITOR, who_am_i))
    app.router.add_delete(SESSION, sign_out)
    app.router.add_get(BLOCKED, _guarded(Role.AUDITOR, blocked_log))
    app.router.add_get(DAILY, _guarded(Role.AUDITOR, daily))
    app.router.add_get(CONSENTS, _guarded(Role.AUDITOR, _consents(consents_api.get_consents)))
    app.router.add_patch(CONSENTS, _guarded(Role.ADMIN, write_consents, write=True))
    app.router.add_get(
        CONSENTS + "/history", _guarded(Role.AUDITOR, _consents(consents_api.get_history))
    )
    app.router.add_get(
        CONSENTS + "/export", _guarded(Role.AUDITOR, _consents(consents_api.export_consents))
    )
