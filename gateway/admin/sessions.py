"""Who is calling a console route: a bearer token, or the console's session cookie.

Sign-in (``POST /admin/session``) takes a bearer token in a JSON body, checks it exactly as the
consents API does (:class:`gateway.auth.Authenticator`), and opens a session: a random 256-bit id
goes into the cookie, and the store keeps only the id's SHA-256 with the principal's name and
role, a per-session CSRF token and an expiry (:data:`SESSION_SECONDS`). The token itself is
never kept. Sessions live in the store, so every process (``--workers N``) and every gateway
sharing the store knows them; sign-out deletes the row.

The cookie is ``HttpOnly``, ``SameSite=Strict``, scoped to ``/admin``, and ``Secure`` when the
request came over https (directly, or as a proxy says with ``X-Forwarded-Proto``/``Forwarded``:
trusting those can only make the cookie stricter).

Writes authenticated by the cookie must also carry the session's CSRF token in
``X-CSRF-Token`` (constant-time comparison) and come from this origin: ``Origin`` (else
``Referer``) must be this gateway's own origin (the scheme and ``Host`` of the request, or
``public_url``), and ``Sec-Fetch-Site``, when a browser sends it, must be ``same-origin``.
Requests with a bearer token are not exposed to CSRF (a browser never adds one on its own) and
skip these checks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from gateway.auth import Principal, Role
from gateway.errors import BadRequest
from gateway.keys import AUTH, SETTINGS, STORE
from gateway.store.base import ConsoleSession

COOKIE = "stopgate_console"
COOKIE_PATH = "/admin"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 8 * 3600
"""A session ends this long after sign-in, whatever happens meanwhile (sign in again then)."""


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    session: ConsoleSession | None
    """None: the caller sent a bearer token."""


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


def _https(request: web.Request) -> bool:
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    forwarded = request.headers.get(hdrs.FORWARDED, "").lower()
    return proto == "https" or "proto=https" in forwarded


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def allowed_origins(request: web.Request) -> set[str]:
    """This gateway's own origins: as the request reached it, and its configured public URL."""
    host = request.host.lower()
    origins = {f"{request.scheme}://{host}"}
    if _https(request):
        origins.add(f"https://{host}")
    public_url = request.app[SETTINGS].public_url
    if public_url:
        public = _origin_of(public_url)
        if public is not None:
            origins.add(public)
    return origins


def check_origin(request: web.Request, *, required: bool) -> None:
    """Refuse (403) a request a browser sent from another site. ``required``: a request that
    names no origin at all (no ``Origin``, no ``Referer``) is refused too."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        raise BadRequest("cross-origin", f"refused a {fetch_site} request", status=403)
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or origin == "null":
        referer = request.headers.get(hdrs.REFERER)
        origin = _origin_of(referer) if referer else None
    if origin is None:
        if required:
            raise BadRequest(
                "cross-origin", "a console write must name its origin (Origin)", status=403
            )
        return
    if origin.lower().rstrip("/") not in allowed_origins(request):
        raise BadRequest("cross-origin", "refused a request from another origin", status=403)


async def current_session(request: web.Request) -> ConsoleSession | None:
    session_id = request.cookies.get(COOKIE)
    if not session_id or len(session_id) > 200:
        return None
    return await request.app[STORE].console_session(_hash(session_id), _now_us())


async def caller(request: web.Request, role: Role, *, write: bool = False) -> Caller:
    """The authenticated caller with at least ``role``. A bearer token, when present, decides
    (a wrong one is a 401 even with a valid cookie); else the session cookie, whose writes must
    pass the CSRF and origin checks."""
    if hdrs.AUTHORIZATION in request.headers:
        principal = await request.app[AUTH].authenticate(request)
        principal.require(role)
        return Caller(principal, None)
    session = await current_session(request)
    if session is None:
        raise BadRequest(
            "unauthorized", "sign in to the console, or send a bearer token", status=401
        )
    principal = Principal(session.name, Role(session.role))
    principal.require(role)
    if write:
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), session.csrf_token.encode()
        ):
            raise BadRequest(
                "csrf-token", f"{CSRF_HEADER} is missing or does not match", status=403
            )
        check_origin(request, required=True)
    return Caller(principal, session)


async def open_session(request: web.Request, principal: Principal) -> tuple[ConsoleSession, str]:
    """Start a session for ``principal``: the session and the id its cookie carries (see
    :func:`set_cookie`). A session the browser already had is ended first (a fresh id at every
    sign-in: no session fixation)."""
    await close_session(request, None)
    session_id = secrets.token_urlsafe(32)
    now_us = _now_us()
    session = ConsoleSession(
        id_hash=_hash(session_id),
        name=principal.name,
        role=principal.role.value,
        csrf_token=secrets.token_urlsafe(32),
        created_us=now_us,
        expires_us=now_us + SESSION_SECONDS * 1_000_000,
    )
    await request.app[STORE].create_console_session(session)
    return session, session_id


def set_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        path=COOKIE_PATH,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=_https(request),
    )


async def close_session(request: web.Request, response: web.StreamResponse | None) -> None:
    session_id = request.cookies.get(COOKIE)
    if session_id and len(session_id) <= 200:
        await request.app[STORE].delete_console_session(_hash(session_id))
    if response is not None:
        response.del_cookie(
            COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=_https(request)
        )
