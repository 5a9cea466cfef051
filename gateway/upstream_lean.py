"""A lean keep-alive HTTP/1.1 client for consent-checked sends, on asyncio and httptools.

The aiohttp client costs about as much CPU per request as the aiohttp server that receives the
send (issue 8), so the send path, which only ever sends a small, fully buffered body and reads a
small, fully buffered reply, uses this client instead, and so do Stopgate's own RingCentral API
calls (a STOP's confirmation, :mod:`gateway.ringcentral_login`). Everything else (the streaming
proxy of other routes, OAuth, the credentials check, the app's and subscribers' deliveries)
keeps aiohttp's client.

Contract:

- One pool of keep-alive connections per origin (scheme, host, port); at most
  ``upstream_connections`` requests (so connections in use) at once, like
  ``make_client_session``; a connection idle for ``IDLE_SECONDS`` is closed, not reused.
- The request carries its whole body with a ``Content-Length``; the reply body may be delimited
  by ``Content-Length``, chunked, or the connection's close, and is read whole (up to
  ``MAX_REPLY_BYTES``).
- ``upstream_connect_timeout`` bounds the connection set-up, ``upstream_timeout`` the whole
  exchange (waiting for a free connection included); either running out raises
  ``UpstreamTimeout``, and a send whose time ran out before it left is not sent.
- No connection → ``UpstreamConnectFailed``; a connection lost or a reply broken after the
  request was written → ``UpstreamUnreachable``.
- A request is never retried: a send must not reach the carrier twice. A pooled connection the
  carrier has already closed is noticed (its end of stream has arrived) and dropped before use;
  one that dies after the request was written is the carrier's failure, reported as such.
- A connection goes back to the pool only after a complete reply that allows keep-alive; any
  other outcome (``Connection: close``, an error, a timeout, a cancelled caller) closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from functools import lru_cache
from typing import Final, cast

import httptools
from multidict import CIMultiDict
from yarl import URL

from gateway.config import Settings
from gateway.errors import UpstreamConnectFailed, UpstreamTimeout, UpstreamUnreachable
from gateway.upstream import RawHeaders, decoded, end_to_end_raw

MAX_REPLY_BYTES: Final = 8 * 1024 * 1024

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

# An idle connection older than this is closed rather than reused: servers drop idle keep-alive
# connections after a while (nginx: 75 s), and one dropped just as a send leaves fails that send.
IDLE_SECONDS: Final = 15.0


class LeanResponse:
    """A complete upstream reply: status, its end-to-end headers (hop-by-hop ones and those its
    ``Connection`` names already dropped) as the carrier wrote them, and its whole body."""

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.raw_headers = raw_headers
        self.body = body

    @property
    def headers(self) -> CIMultiDict[str]:
        """The end-to-end headers as text."""
        return decoded(self.raw_headers)


class _Connection:
    """One keep-alive connection: parses one reply at a time with httptools. An
    ``asyncio.Protocol`` by its methods, not by inheritance (as :class:`gateway.front.FrontProtocol`
    is, and for the same reason)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_reply: int) -> None:
        self._loop = loop
        self._max_reply = max_reply
        self.transport: asyncio.Transport | None = None
        self.closed = loop.create_future()
        self.usable = True
        self._parser = httptools.HttpResponseParser(self)
        self._reply: asyncio.Future[LeanResponse] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._status = 0
        self._until_close = False
        self._received = False
        self.idle_since = 0.0
        self._deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_at = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._reply is None:
            # Bytes nobody asked for: the connection is out of step, never reuse it.
            self._fail(UpstreamUnreachable("upstream sent data outside a reply"))
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamUnreachable(f"malformed upstream reply: {type(exc).__name__}"))

    def eof_received(self) -> bool | None:
        self._end()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self._stop_watchdog()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        # A request is written whole (the transport buffers it); nothing else to hold back.
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status < 200:
            return
        framed = False
        for name, _ in self._headers:
            lowered = name.lower()
            if lowered in (b"content-length", b"transfer-encoding"):
                framed = True
        self._until_close = not framed and self._status not in (204, 304)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_reply:
            self._fail(UpstreamUnreachable(f"upstream reply over {self._max_reply} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:
            # An interim reply (100 Continue, 103 Early Hints): the real one follows.
            self._headers = []
            return
        reply = self._reply
        if reply is None or reply.done():
            # A second reply to one request: the connection is out of step.
            self.usable = False
            return
        self._reply = None
        if not self._parser.should_keep_alive():
            self.usable = False
        reply.set_result(self._response())

    # internals
    def _response(self) -> LeanResponse:
        # Only the end-to-end headers are kept: those a proxy relays.
        body = self._body
        return LeanResponse(
            self._status,
            end_to_end_raw(self._headers),
            body[0] if len(body) == 1 else b"".join(body),
        )

    def _end(self) -> None:
        """The carrier's end of stream: completes a close-delimited reply, fails any other."""
        self.usable = False
        reply = self._reply
        if reply is None or reply.done():
            return
        self._reply = None
        if self._until_close and self._status >= 200:
            reply.set_result(self._response())
        elif self._received:
            reply.set_exception(UpstreamUnreachable("upstream closed the connection mid-reply"))
        else:
            reply.set_exception(UpstreamUnreachable("upstream closed the connection unanswered"))

    def _fail(self, error: UpstreamUnreachable) -> None:
        self.usable = False
        reply = self._reply
        self._reply = None
        if reply is not None and not reply.done():
            reply.set_exception(error)
        self.close()

    def send(self, request: bytes, deadline: float) -> asyncio.Future[LeanResponse]:
        """Write ``request``; its reply, failed with UpstreamTimeout at ``deadline`` (loop time)."""
        assert self.transport is not None
        self._reply = reply = self._loop.create_future()
        self._headers = []
        self._body = []
        self._size = 0
        self._status = 0
        self._until_close = False
        self._received = False
        self._deadline = deadline
        if self._watchdog is None or deadline < self._watchdog_at:
            # (Deadlines only move on today: the timeout is fixed; an earlier one re-arms.)
            self._stop_watchdog()
            self._arm_watchdog(deadline)
        self.transport.write(request)
        return reply

    def _check_deadline(self) -> None:
        # One timer serves the connection's exchanges one after another: armed at the first
        # one's deadline, it moves on to the current one's when it fires early. (A timer set and
        # cancelled per send cost more than the rest of the client's work for the send.)
        self._watchdog = None
        if self._reply is None:
            return  # idle: the next send arms it again
        if self._loop.time() >= self._deadline:
            self.time_out()
        else:
            self._arm_watchdog(self._deadline)

    def _arm_watchdog(self, at: float) -> None:
        self._watchdog = self._loop.call_at(at, self._check_deadline)
        self._watchdog_at = at

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def time_out(self) -> None:
        """The exchange's deadline passed: fail the reply awaited, if any."""
        self.usable = False
        reply = self._reply
        self._reply = None
        if reply is not None and not reply.done():
            reply.set_exception(UpstreamTimeout("upstream did not answer in time"))

    def loop_time(self) -> float:
        return self._loop.time()

    def close(self) -> None:
        self.usable = False
        self._stop_watchdog()
        if self.transport is not None:
            self.transport.close()


@lru_cache(maxsize=1024)
def _target(url: URL, method: str) -> tuple[tuple[str, str, int], bytes]:
    """The origin (scheme, host, port) of ``url`` and the start of a request to it: its
    request line and ``Host`` header. Memoised: sends go to the same few URLs."""
    scheme = url.scheme
    host = url.raw_host or ""
    port = url.port or _DEFAULT_PORTS.get(scheme, 80)
    authority = host if port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    target = url.raw_path_qs or "/"
    start = f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\n"
    return (scheme, host, port), start.encode("utf-8", "surrogateescape")


def _head(request_line: bytes, headers: RawHeaders, length: int) -> bytes:
    head = b"".join(
        [
            request_line,
            *[b"%s: %s\r\n" % pair for pair in headers],
            b"Content-Length: %d\r\n\r\n" % length,
        ]
    )
    # One CR and one LF per line: a header smuggling another line in is refused.
    count = len(headers) + 4
    if head.count(b"\n") != count or head.count(b"\r") != count:
        raise UpstreamUnreachable("a header name or value holds a line break")
    return head


class _Slots:
    """At most ``limit`` exchanges at once, waiters served in order of arrival: an
    ``asyncio.Semaphore`` whose free slot is taken without a coroutine (most sends find one)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_free(self) -> bool:
        """Take a slot if one is free now and nobody waits for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self, deadline: float) -> None:
        """Take the next slot given back; TimeoutError at ``deadline`` (loop time)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed a slot just as this caller gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class LeanClient:
    """Per-origin pools of keep-alive connections, for whole-body requests with bodies."""

    def __init__(
        self,
        settings: Settings,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._max_reply = max_reply_bytes
        self._connect_timeout = settings.upstream_connect_timeout
        self._timeout = settings.upstream_timeout
        self._slots = _Slots(settings.upstream_connections)
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._closing = False

    async def request(
        self, method: str, url: URL, *, headers: RawHeaders, body: bytes
    ) -> LeanResponse:
        """Send ``method url`` with ``headers`` and ``body``; the whole reply, or an Upstream error.

        ``headers`` are the end-to-end ones, as raw pairs (:func:`gateway.upstream.end_to_end_raw`
        makes them); ``Host`` and ``Content-Length`` are set here.
        """
        origin, request_line = _target(url, method)
        host = origin[1]
        head = _head(request_line, headers, len(body))
        loop = asyncio.get_running_loop()
        # One deadline for the whole exchange. The common case (a free slot, a pooled
        # connection) waits only for the reply, under a plain timer: asyncio.timeout() costs
        # more per send than the rest of this method.
        deadline = loop.time() + self._timeout
        if not self._slots.take_free():
            try:
                await self._slots.wait(deadline)
            except TimeoutError as exc:
                raise UpstreamTimeout(f"{host}: no connection free in time") from exc
        try:
            connection = self._pooled(origin) or await self._connect(origin, deadline)
            if loop.time() >= deadline:
                # A send that could only time out is not sent at all.
                self._release(origin, connection)
                raise UpstreamTimeout(f"{host}: no connection free in time")
            done = False
            try:
                response = await connection.send(head + body if body else head, deadline)
                done = connection.usable
            finally:
                if done:
                    self._release(origin, connection)
                else:
                    self._discard(connection)
            return response
        finally:
            self._slots.give_back()

    def _pooled(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        fresh_since = idle[-1].loop_time() - IDLE_SECONDS
        while idle:
            connection = idle.pop()
            if connection.usable and connection.idle_since >= fresh_since:
                return connection
            # Closed by the carrier while idle, or idle too long: drop it before the send leaves.
            self._discard(connection)
        return None

    async def _connect(self, origin: tuple[str, str, int], deadline: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
            self._ssl = context
        connection = _Connection(loop, self._max_reply)
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout)):
                await loop.create_connection(
                    lambda: cast(asyncio.Protocol, connection),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{host}: no connection in time") from exc
        except OSError as exc:
            raise UpstreamConnectFailed(f"{host}: {type(exc).__name__}") from exc
        self._open.add(connection)
        return connection

    def _release(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        """Back to the pool, idle from now on."""
        if self._closing:
            self._discard(connection)
            return
        connection.idle_since = connection.loop_time()
        self._idle.setdefault(origin, deque()).append(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def close(self) -> None:
        """Close every connection and wait (briefly) until each is gone."""
        self._closing = True
        self._idle.clear()
        open_now = list(self._open)
        self._open.clear()
        for connection in open_now:
            connection.close()
        if open_now:
            await asyncio.wait([c.closed for c in open_now], timeout=2.0)
