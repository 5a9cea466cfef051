"""Everything under a carrier's prefix that is not a send: forwarded unchanged, streamed both
ways, hop-by-hop headers dropped, ``Authorization`` passed through, redirects relayed."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import hdrs, web

from gateway import upstream
from gateway.dialects.base import Dialect
from gateway.errors import RefusedPath, UpstreamTimeout, UpstreamUnreachable
from gateway.keys import CLIENT, CREDENTIALS, DIALECTS, METRICS, SETTINGS
from gateway.refusals import refuse_bad_request, refuse_upstream_failure
from gateway.routing import classify, normalise_path
from gateway.send_request import RelayedReply
from gateway.sending import handle_send

log = logging.getLogger("stopgate.proxy")

_CHUNK = 64 * 1024


def upstream_base(request: web.Request, dialect: Dialect) -> str:
    settings = request.app[SETTINGS]
    return settings.twilio_upstream if dialect.name == "twilio" else settings.ringcentral_upstream


async def carrier_route(request: web.Request) -> web.StreamResponse:
    """The catch-all: carrier paths are checked or forwarded; anything else is a 404."""
    dialects = request.app[DIALECTS]
    try:
        match = classify(request.method, request.raw_path.split("?", 1)[0], dialects)
    except RefusedPath as exc:
        return refuse_bad_request(exc.dialect, exc, request.headers.get("X-Request-Id", ""))
    if match is None:
        raise web.HTTPNotFound(
            text='{"error": {"reason": "not-found", "message": "No such route"}}',
            content_type="application/json",
        )
    if match.send is not None:
        answer = await handle_send(request, match.dialect, match.send)
        return answer.to_response() if isinstance(answer, RelayedReply) else answer
    return await forward_unchanged(request, match.dialect)


def _ends_token(raw_path: str) -> bool:
    path = normalise_path(raw_path.split("?", 1)[0])
    return path in ("/restapi/oauth/revoke", "/restapi/oauth/token")


_DECODED_BY_THE_SERVER = frozenset({"gzip", "deflate", "br", "zstd"})
"""The ``Content-Encoding`` values aiohttp's request parser decodes before a route reads the
body (a single coding, as its parser reads the header); any other body is passed on as sent."""


async def forward_unchanged(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    headers = upstream.end_to_end_headers(request.headers)
    data: aiohttp.StreamReader | None = None
    if request.body_exists:
        data = request.content
        encoding = headers.get(hdrs.CONTENT_ENCODING, "")
        if encoding.isascii() and encoding.lower() in _DECODED_BY_THE_SERVER:
            # aiohttp's server decoded the body already: what goes on is the content itself,
            # without the encoding's header or the encoded length (sent chunked instead).
            headers.popall(hdrs.CONTENT_ENCODING)
            headers.popall(hdrs.CONTENT_LENGTH, None)
        elif request.content_length is not None:
            headers[hdrs.CONTENT_LENGTH] = str(request.content_length)
    url = upstream.upstream_url(upstream_base(request, dialect), request.raw_path)
    try:
        response = await upstream.request(
            request.app[CLIENT], request.method, url, headers=headers, data=data
        )
    except (UpstreamUnreachable, UpstreamTimeout) as exc:
        return refuse_upstream_failure(
            request, dialect, exc, request.headers.get("X-Request-Id", "")
        )
    if response.status < 300 and _ends_token(request.raw_path):
        # A revoked or replaced RingCentral token must stop opening consent answers at once.
        request.app[CREDENTIALS].forget_all()
    async with response:
        out = web.StreamResponse(
            status=response.status,
            reason=response.reason,
            headers=upstream.end_to_end_headers(response.headers),
        )
        if response.content_length is not None:
            out.content_length = response.content_length
        await out.prepare(request)
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                await out.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Headers are gone already; cutting the connection is the only honest signal left.
            request.app[METRICS].upstream_errors.labels(dialect.name, "body-cut").inc()
            log.warning("upstream body cut short on %s: %s", request.raw_path, exc)
            if request.transport is not None:
                request.transport.close()
            return out
        await out.write_eof()
    return out
