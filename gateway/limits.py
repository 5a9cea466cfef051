"""Server limits against hostile clients: slow senders, header floods, oversize bodies.

aiohttp's server keeps a connection that trickles its request for about an hour, so Stopgate sets
its own limits (all in :class:`gateway.config.Settings`):

* ``header_timeout``: a connection must deliver a request's complete headers within this many
  seconds of opening, or of the end of its previous answer; otherwise it is closed. This is the
  server's keep-alive timer (aiohttp checks it only while the connection waits for a request), so
  it also bounds how long an idle keep-alive connection stays open.
* ``body_timeout``: once the headers are in, the whole body must arrive within this many seconds;
  otherwise the connection is closed (the handler reading it sees the connection drop).
* ``max_headers`` / ``max_header_bytes``: more header lines, or a request line or header field
  longer than this, is answered ``400 Bad Request`` by the HTTP parser and the connection closed.
* ``max_body_bytes`` (already there): a body Stopgate reads beyond it is answered 413.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import HttpVersion11, hdrs, web

from gateway.config import Settings
from gateway.errors import BadRequest

log = logging.getLogger("stopgate.limits")


LINGER_SECONDS = 10.0
"""At most this long (aiohttp's default) the rest of a body no handler read is drained."""


def handler_args(settings: Settings) -> dict[str, Any]:
    """The HTTP server's per-connection settings (``web.Application(handler_args=…)``)."""
    return {
        "keepalive_timeout": settings.header_timeout,
        # An answer given before the body was read (401, 404, 415...) drains the rest of the
        # body no longer than the body itself was allowed to take.
        "lingering_time": min(LINGER_SECONDS, settings.body_timeout),
        "max_headers": settings.max_headers,
        "max_line_size": settings.max_header_bytes,
        "max_field_size": settings.max_header_bytes,
    }


def _cut_if_unfinished(request: web.Request, timeout: float) -> None:
    if request.content.is_eof() or request.transport is None:
        return
    log.warning(
        "connection closed: body of %s %s not received within %s s",
        request.method,
        request.rel_url.path[:200],
        timeout,
    )
    request.protocol.force_close()


def body_deadline(timeout: float) -> Any:
    """A middleware closing the connection of a request whose body is not in within
    ``timeout`` seconds of its headers (and refusing ``Transfer-Encoding`` on HTTP/1.0)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.version < HttpVersion11 and hdrs.TRANSFER_ENCODING in request.headers:
            # HTTP/1.0 has no chunked framing: a sender that claims both is confused or
            # probing (RFC 9112 §6.1): refuse, and close.
            refused = web.json_response(
                {"error": {"reason": "ambiguous-framing", "message": "HTTP/1.0 with chunks"}},
                status=400,
            )
            refused.force_close()
            return refused
        if not request.body_exists or request.content.is_eof():
            response: web.StreamResponse = await handler(request)
            return response
        timer = asyncio.get_running_loop().call_later(timeout, _cut_if_unfinished, request, timeout)
        try:
            response = await handler(request)
            return response
        finally:
            timer.cancel()

    return middleware


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; a body that is not JSON (400 ``malformed-body``) or is over
    ``max_body_bytes`` (413 ``body-too-large``) is a :class:`BadRequest` the route renders in
    its own error shape."""
    try:
        return await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest("body-too-large", "the body is over max_body_bytes", status=413) from None
    except (ValueError, UnicodeDecodeError, LookupError, RecursionError):
        raise BadRequest("malformed-body", "The body must be JSON") from None
