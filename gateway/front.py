"""The gateway's HTTP front: sends and carrier webhooks on a lean path, the rest by aiohttp.

Every connection starts on :class:`FrontProtocol`. It reads each request's head itself
(httptools) and serves the request when it is one of the hot paths and it can take it whole:

- ``POST`` over HTTP/1.1 to a send route of a dialect (:func:`gateway.routing.classify`, the
  same matching as aiohttp's catch-all route), or to a carrier webhook path exactly as
  :data:`gateway.inbound.WEBHOOKS` spells it (with a ``Host`` header: the Twilio signature
  covers the URL),
- a body framed by one ``Content-Length`` of at most ``max_body_bytes``,
- no ``Transfer-Encoding``, ``Content-Encoding``, ``Expect`` or ``Upgrade``, no header that may
  appear once (``Host``, ``Content-Type``, … as aiohttp's parser counts them) repeated, a head
  within the server's header limits.

A send goes to :func:`gateway.sending.handle_send`, a webhook to its handler in
:mod:`gateway.inbound` (what the aiohttp routes call too), and the answer is written from here.
The first request that is anything else hands the connection over for good, with every byte
from that request's first on, to aiohttp's own request handler (a transport can change
protocol), which then serves the connection as if it had had it from the start: its limits,
its errors, its routes. When in doubt the front hands over.

Why: aiohttp's server costs about 100 µs of CPU per request, a third of a send and a quarter of
a STOP webhook's time on the event loop (issue 8); this front costs a fraction of that and keeps
aiohttp for everything that is not a hot path.

Limits are those of :mod:`gateway.limits`: a head must be complete within ``header_timeout`` of
the connection's start or of the previous answer (which also bounds an idle keep-alive
connection), a body within ``body_timeout`` of its head, or the connection is closed. A send
already being decided is never cancelled by its client going away (aiohttp's rule too): it is
decided, logged and, if allowed, delivered; only the answer is lost.

Shutdown (:class:`gateway.server.FrontServer`): idle connections are closed at once, a send being
decided gets up to the runner's ``shutdown_timeout`` to finish and answer, then its connection is
closed.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import time
from collections.abc import Sequence
from typing import Final, Protocol, cast
from urllib.parse import parse_qsl, unquote

import httptools
from aiohttp import hdrs, web
from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy

from gateway.dialects.base import Dialect, SendKind
from gateway.errors import RefusedPath
from gateway.inbound import WEBHOOKS, Webhook
from gateway.keys import DIALECTS, SETTINGS
from gateway.routing import classify
from gateway.send_request import RelayedReply
from gateway.sending import handle_send
from gateway.upstream import RawHeaders, decoded

log = logging.getLogger("stopgate.front")

_HEAD_END: Final = b"\r\n\r\n"
MAX_FRONT_HEAD: Final = 16 * 1024
"""A send's head is well under 2 KB; a longer one goes to aiohttp (which applies
``max_headers`` / ``max_header_bytes`` and answers 400 where they are passed)."""
_READ_HIGH_WATER: Final = 256 * 1024
"""Bytes buffered behind a send being decided before reading from the client pauses."""
_SEND_METHOD: Final = b"POST "
_SINGLETON_HEADERS: Final = frozenset(
    {
        b"content-length",
        b"content-location",
        b"content-range",
        b"content-type",
        b"etag",
        b"host",
        b"max-forwards",
        b"server",
        b"transfer-encoding",
        b"user-agent",
    }
)
"""Headers a request may carry once (RFC 9110; aiohttp's parser refuses a repeated one)."""


_NO_QUERY: Final = MultiDictProxy(MultiDict[str]())

_Route = tuple[Dialect, SendKind] | Webhook
"""What serves a request the front took: a send of a dialect, or a carrier webhook."""


class FrontRequest:
    """A request the front read whole: what :class:`gateway.send_request.SendRequest` and
    :class:`gateway.inbound.WebhookRequest` ask for."""

    scheme: Final = "http"
    """The front serves plain TCP (as aiohttp's ``request.scheme`` says without TLS)."""

    def __init__(
        self,
        app: web.Application,
        raw_path: str,
        raw_headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        self.app = app
        self.method = "POST"
        self.raw_path = raw_path
        self.raw_headers = raw_headers
        self.headers = CIMultiDictProxy(decoded(raw_headers))
        self._body = body
        self._query: MultiDictProxy[str] | None = None

    @property
    def path(self) -> str:
        return unquote(self.raw_path.split("?", 1)[0], errors="surrogateescape")

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            _, _, text = self.raw_path.partition("?")
            if not text:
                self._query = _NO_QUERY
                return _NO_QUERY
            pairs = parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
            self._query = MultiDictProxy(MultiDict(pairs))
        return self._query

    async def read(self) -> bytes:
        return self._body

    @property
    def host(self) -> str:
        """The ``Host`` header (the front serves no request without one)."""
        return self.headers[hdrs.HOST]


class _Head:
    """What the parser reported of one request head (it calls these methods)."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))


class FrontListener(Protocol):
    """What a :class:`FrontProtocol` needs of the server that made it
    (:class:`gateway.server.FrontServer`)."""

    app: web.Application
    loop: asyncio.AbstractEventLoop
    fronts: set[FrontProtocol]
    tasks: set[asyncio.Task[None]]

    def aiohttp_protocol(self) -> asyncio.Protocol: ...


class FrontProtocol:
    """One client connection, until it is handed to aiohttp (see the module's docstring).

    An ``asyncio.Protocol`` by its methods, not by inheritance: the event loop needs only the
    methods, and compiled (:mod:`gateway.native`) a class with an interpreted base gets a
    weak-reference slot that mypyc's deallocator never clears."""

    def __init__(self, server: FrontListener) -> None:
        self._server = server
        self._app = server.app
        settings = server.app[SETTINGS]
        self._header_timeout: float = settings.header_timeout
        self._body_timeout: float = settings.body_timeout
        self._max_body: int = settings.max_body_bytes
        self._max_headers: int = settings.max_headers
        self._max_field: int = settings.max_header_bytes
        self._dialects: tuple[Dialect, ...] = server.app[DIALECTS]
        self._loop = server.loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head = _Head()
        self._pending: tuple[int, int, str, _Route, bool] | None = None
        """A request whose head is in and whose body is not yet: (head length, body length, raw
        path, route, keep-alive)."""
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        """When the head (or body) being awaited must be in; None while a send is decided."""
        self._timer_at = 0.0
        self._deadline_what = "headers"
        self._deadline_seconds = 0.0
        self._task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._writing_paused: asyncio.Future[None] | None = None
        self._closing = False
        self._eof = False
        self._handed_over = False
        self._handler_eof: bool | None = None

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self._server.fronts.add(self)
        self._arm(self._header_timeout, "headers")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._advance()
        elif len(self._buffer) > _READ_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # The client sent all it will; an answer to what it sent may still go out.
        self._eof = True
        if self._task is None:
            self._advance()
        if self._handed_over:
            return self._handler_eof
        return self._task is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.fronts.discard(self)
        self._cancel_timer()
        self.transport = None
        if self._writing_paused is not None and not self._writing_paused.done():
            self._writing_paused.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writing_paused is not None and not self._writing_paused.done():
            self._writing_paused.set_result(None)
        self._writing_paused = None

    # ---- reading ---------------------------------------------------------------------------

    def _advance(self) -> None:
        """Serve what the buffer holds, one request at a time, or hand the connection over."""
        if self.transport is None or self._handed_over or self._task is not None:
            return
        buffer = self._buffer
        if self._pending is None:
            if not buffer:
                if self._eof:
                    self.transport.close()
                return
            if not buffer.startswith(_SEND_METHOD[: len(buffer)]):
                self._hand_over()
                return
            end = buffer.find(_HEAD_END, 0, MAX_FRONT_HEAD)
            head = bytes(buffer[: end + 4] if end >= 0 else buffer)
            crlf = head.count(b"\r\n")
            # (A head still arriving may end between a CR and its LF.)
            cr = head.count(b"\r") - (end < 0 and head.endswith(b"\r"))
            if head.count(b"\n") != crlf or cr != crlf:
                # A bare CR or LF: framing the front does not judge (aiohttp refuses it).
                self._hand_over()
                return
            if end < 0:
                if len(buffer) >= MAX_FRONT_HEAD or self._eof:
                    self._hand_over()
                return
            self._pending = self._read_head(head)
            if self._pending is None:
                self._hand_over()
                return
            self._arm(self._body_timeout, "body")
        head_length, body_length, raw_path, route, keep_alive = self._pending
        if len(buffer) < head_length + body_length:
            if self._eof:
                self.transport.close()
            return
        self._pending = None
        self._disarm()
        body = bytes(buffer[head_length : head_length + body_length])
        del buffer[: head_length + body_length]
        request = FrontRequest(self._app, raw_path, self._head.headers, body)
        self._task = task = self._loop.create_task(self._serve(request, route, keep_alive))
        self._server.tasks.add(task)

    def _read_head(self, head: bytes) -> tuple[int, int, str, _Route, bool] | None:
        """The head of a request the front serves, or None when aiohttp should have it."""
        self._head = parsed = _Head()
        # A parser per head, fed the head only (the front frames the body itself).
        parser = httptools.HttpRequestParser(parsed)
        try:
            parser.feed_data(head)
        except httptools.HttpParserError:
            return None
        if parser.get_http_version() != "1.1" or parser.should_upgrade():
            return None
        if len(parsed.headers) > self._max_headers:
            return None
        length: int | None = None
        singletons: set[bytes] = set()
        for name, value in parsed.headers:
            if len(name) + len(value) + 2 > self._max_field:
                return None
            lowered = name.lower()
            if lowered in _SINGLETON_HEADERS:
                if lowered in singletons:
                    return None  # aiohttp refuses a repeated one (400); so does the front
                singletons.add(lowered)
            if lowered == b"content-length":
                if not value.isdigit():
                    return None
                length = int(value)
            elif lowered in (b"transfer-encoding", b"content-encoding", b"expect", b"upgrade"):
                # (aiohttp decodes a Content-Encoding before a route reads the body.)
                return None
        if length is None or length > self._max_body:
            return None
        url = parsed.url
        if not url.startswith(b"/") or b"#" in url or len(url) > self._max_field:
            return None
        raw_path = url.decode("utf-8", "surrogateescape")
        path = raw_path.split("?", 1)[0]
        route: _Route
        try:
            match = classify("POST", path, self._dialects)
        except RefusedPath:
            return None
        if match is not None:
            if match.send is None:
                return None
            route = (match.dialect, match.send)
        else:
            webhook = WEBHOOKS.get(path)
            if webhook is None or b"host" not in singletons:
                return None
            route = webhook
        return len(head), length, raw_path, route, parser.should_keep_alive()

    # ---- answering -------------------------------------------------------------------------

    async def _serve(self, request: FrontRequest, route: _Route, keep_alive: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            await self._answer(request, route, keep_alive)
        finally:
            # Here rather than a done callback: that would cost a turn of the loop per send.
            self._server.tasks.discard(task)

    async def _answer(self, request: FrontRequest, route: _Route, keep_alive: bool) -> None:
        try:
            if isinstance(route, tuple):
                response: web.Response | RelayedReply = await handle_send(request, *route)
            else:
                response = await route(request)
            if isinstance(response, RelayedReply):
                answer = serialise_relayed(response, keep_alive)
            else:
                keep_alive = keep_alive and response.keep_alive is not False
                answer = serialise(response, keep_alive)
        except Exception:
            log.exception("unexpected error answering a request on %s", request.raw_path[:200])
            answer, keep_alive = INTERNAL_ERROR, False
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away; the send was decided and logged all the same
        transport.write(answer)
        if self._writing_paused is not None:
            await self._writing_paused
        self._task = None
        if self.transport is None:
            return
        if not keep_alive or self._closing:
            transport.close()
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._arm(self._header_timeout, "headers")
        self._advance()

    # ---- handing over, timers, shutdown ----------------------------------------------------

    def _hand_over(self) -> None:
        """From now on aiohttp serves this connection, from the first unserved byte on."""
        transport = self.transport
        assert transport is not None
        self._handed_over = True
        self._cancel_timer()
        self._server.fronts.discard(self)
        if self._reading_paused:
            # Before aiohttp sees a byte: a pause it makes while digesting the buffer (too many
            # pipelined requests) must stay in force, not be undone by ours ending.
            self._reading_paused = False
            transport.resume_reading()
        handler = self._server.aiohttp_protocol()
        data = bytes(self._buffer)
        self._buffer.clear()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if data:
            handler.data_received(data)
        if self._eof:
            self._handler_eof = handler.eof_received()

    def _arm(self, seconds: float, what: str) -> None:
        # One timer per connection, moved rather than replaced: a deadline set and cleared per
        # request costs a float, not a timer handle (the timer wakes at most once per timeout
        # and goes back to sleep if the deadline moved on).
        self._deadline = self._loop.time() + seconds
        self._deadline_what = what
        self._deadline_seconds = seconds
        if self._timer is not None and self._timer_at > self._deadline:
            self._timer.cancel()  # the new deadline comes sooner
            self._timer = None
        if self._timer is None:
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._time_out)

    def _disarm(self) -> None:
        self._deadline = None

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_out(self) -> None:
        self._timer = None
        deadline = self._deadline
        if self.transport is None or deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._time_out)
            return
        if self._task is not None:
            return
        if self._deadline_what == "body":
            log.warning(
                "connection closed: body of a send not received within %s s",
                self._deadline_seconds,
            )
        self.transport.close()

    def close_when_idle(self) -> None:
        """Shutdown: close now if no send is being decided, else after its answer."""
        self._closing = True
        if self._task is None and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


_INTERNAL_ERROR_BODY: Final = (
    b'{"error": {"reason": "internal-error", "message": "The gateway failed to answer"}}'
)
INTERNAL_ERROR: Final = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_INTERNAL_ERROR_BODY), _INTERNAL_ERROR_BODY)
)


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


_PHRASES: Final = {status: _reason_phrase(status) for status in range(100, 600)}


class _Date:
    """The ``Date`` header's line, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode("ascii")
        return self._line


_date = _Date()


def serialise(response: web.Response, keep_alive: bool) -> bytes:
    """An HTTP/1.1 answer's bytes for ``response`` (its body whole, ``Content-Length`` set).

    Raises ValueError for a header name or value holding a line break (as aiohttp does)."""
    body = response.body
    if body is None:
        payload = b""
    elif isinstance(body, bytes | bytearray):
        payload = bytes(body)
    else:
        raise ValueError("the send path answers with whole bodies only")
    status = response.status
    reason = response.reason or _PHRASES.get(status, "")
    headers = [
        (name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
        for name, value in response.headers.items()
    ]
    status_line = f"HTTP/1.1 {status} {reason}\r\n".encode("utf-8", "surrogateescape")
    return _framed(status, status_line, headers, (), payload, keep_alive)


def serialise_relayed(reply: RelayedReply, keep_alive: bool) -> bytes:
    """:func:`serialise` for a relayed carrier reply, from its raw headers: the same answer as
    ``serialise(reply.to_response(), keep_alive)`` (a test holds the two equal, line for line but
    the ``Date``), without a header decoded and encoded again.

    Raises ValueError for a header name or value holding a line break."""
    status = reply.status
    status_line = _STATUS_LINES.get(status) or _status_line(status)
    return _framed(status, status_line, reply.carrier_headers, reply.own, reply.body, keep_alive)


def _framed(
    status: int,
    status_line: bytes,
    headers: RawHeaders,
    own: Sequence[tuple[str, str]],
    payload: bytes,
    keep_alive: bool,
) -> bytes:
    """The answer's bytes: ``headers`` but those the framing sets here, with each of ``own``
    in the place of the first header of its name (the others of that name go; appended when
    there is none), then the framing's own headers, then ``payload``."""
    parts = [status_line]
    replacing = {
        name.lower().encode("ascii"): f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
        for name, value in own
    }
    typed = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in replacing:
            line = replacing[lowered]
            if line:  # in the first one's place; the rest go
                parts.append(line)
                replacing[lowered] = b""
        elif lowered not in _SET_HERE:
            typed = typed or lowered == b"content-type"
            parts.append(b"%s: %s\r\n" % (name, value))
    parts += [line for line in replacing.values() if line]
    # 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110); an empty body gets no
    # default type (aiohttp's rules).
    bodiless = status < 200 or status in (204, 304)
    if bodiless:
        payload = b""
    elif payload and not typed:
        parts.append(b"Content-Type: application/octet-stream\r\n")
    parts.append(_date())
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    if not bodiless:
        parts.append(b"Content-Length: %d\r\n" % len(payload))
    parts.append(b"\r\n")
    head = b"".join(parts)
    breaks = len(parts)  # one CRLF ends each part
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise ValueError("a header name or value holds a line break")
    return head + payload


_SET_HERE: Final = frozenset({b"content-length", b"connection", b"date", b"transfer-encoding"})
"""Header names (lower case) the answer's framing sets here."""


def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {_PHRASES.get(status, '')}\r\n".encode("ascii")


_STATUS_LINES: Final = {status: _status_line(status) for status in range(100, 600)}
