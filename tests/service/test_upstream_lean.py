"""The send path's lean upstream client against real servers: aiohttp ones and raw sockets.

Raw-socket servers script what aiohttp would never do on purpose (close-delimited bodies,
replies cut short, idle connections dropped, silence), and count what reached them, so a
request sent twice would show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from yarl import URL

from gateway import upstream_lean
from gateway.app import create_app
from gateway.config import Secret, Settings
from gateway.errors import UpstreamConnectFailed, UpstreamTimeout, UpstreamUnreachable
from gateway.upstream_lean import LeanClient
from tests.support.front import FrontTestServer
from tests.support.servers import free_port

Reply = Callable[[asyncio.StreamWriter, int], Awaitable[None]]


class RawUpstream:
    """A socket server that reads whole requests and answers each with ``reply(writer, n)``."""

    def __init__(self, reply: Reply, ssl_context: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    def url(self, path: str = "/send") -> URL:
        scheme = "https" if self.ssl_context else "http"
        return URL(f"{scheme}://localhost:{self.port}{path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                await self.reply(writer, len(self.requests))
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def keep_alive(body: bytes = b'{"ok":true}') -> Reply:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(ok(body))
        await writer.drain()

    return reply


@pytest.fixture
async def client() -> AsyncIterator[LeanClient]:
    lean = LeanClient(Settings(upstream_timeout=2.0, upstream_connect_timeout=1.0))
    yield lean
    await lean.close()


HEADERS = [(b"Content-Type", b"application/json"), (b"X-Trace", b"abc")]


async def test_relays_status_headers_and_body_and_reuses_the_connection(
    client: LeanClient,
) -> None:
    seen: list[tuple[str, str, str | None, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(
            (request.method, request.path_qs, request.headers.get("X-Trace"), await request.read())
        )
        return web.Response(
            status=201, body=b'{"sid":"SM1"}', headers={"X-Carrier": "a", "Set-Cookie": "k=v"}
        )

    app = web.Application()
    app.router.add_post("/2010-04-01/Messages.json", handler)
    async with TestServer(app) as server:
        url = server.make_url("/2010-04-01/Messages.json?x=%2B1")
        for _ in range(3):
            response = await client.request("POST", url, headers=HEADERS, body=b'{"to":"+1"}')
            assert response.status == 201
            assert response.body == b'{"sid":"SM1"}'
            assert isinstance(response.headers, CIMultiDict)
            assert response.headers["x-carrier"] == "a"
            assert response.headers.getall("Set-Cookie") == ["k=v"]
    assert seen == [("POST", "/2010-04-01/Messages.json?x=%2B1", "abc", b'{"to":"+1"}')] * 3


async def test_keeps_one_connection_alive_across_sends(client: LeanClient) -> None:
    async with RawUpstream(keep_alive()) as upstream:
        for _ in range(5):
            assert (await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")).body
    assert upstream.connections == 1
    assert len(upstream.requests) == 5
    first = upstream.requests[0]
    assert first.startswith(b"POST /send HTTP/1.1\r\nHost: localhost:")
    assert b"\r\nContent-Length: 2\r\n\r\n{}" in first


async def test_reads_a_chunked_reply(client: LeanClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"part":')
        await response.write(b'"two"}')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/send", handler)
    async with TestServer(app) as server:
        response = await client.request(
            "POST", server.make_url("/send"), headers=HEADERS, body=b"{}"
        )
    assert "Transfer-Encoding" not in response.headers  # framing is hop-by-hop
    assert response.body == b'{"part":"two"}'


async def test_reads_a_close_delimited_reply_and_does_not_reuse_that_connection(
    client: LeanClient,
) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end " + bytes([48 + n])
        )
        await writer.drain()
        writer.close()

    async with RawUpstream(reply) as upstream:
        first = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
        second = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
    assert (first.body, second.body) == (b"until the end 1", b"until the end 2")
    assert upstream.connections == 2


async def test_honours_connection_close(client: LeanClient) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(ok(extra=b"Connection: close\r\n"))
        await writer.drain()
        # Keep the socket open: the client must close it on the header alone.

    async with RawUpstream(reply) as upstream:
        for _ in range(3):
            response = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
            assert response.status == 200
    assert upstream.connections == 3
    assert len(upstream.requests) == 3


async def test_a_reply_cut_mid_body_is_unreachable_and_never_resent(client: LeanClient) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()
        writer.transport.abort()  # a reset, not a clean close

    async with RawUpstream(reply) as upstream:
        with pytest.raises(UpstreamUnreachable):
            await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
    assert len(upstream.requests) == 1


async def test_a_connection_closed_unanswered_is_unreachable_and_never_resent(
    client: LeanClient,
) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.close()

    async with RawUpstream(reply) as upstream:
        with pytest.raises(UpstreamUnreachable) as caught:
            await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
        await asyncio.sleep(0.1)
    assert not isinstance(caught.value, UpstreamConnectFailed)
    assert len(upstream.requests) == 1
    assert upstream.connections == 1


async def test_a_malformed_reply_is_unreachable(client: LeanClient) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 OK-ish\r\n\r\n")
        await writer.drain()

    async with RawUpstream(reply) as upstream:
        with pytest.raises(UpstreamUnreachable):
            await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")


async def test_a_silent_upstream_times_out_once() -> None:
    lean = LeanClient(Settings(upstream_timeout=0.3, upstream_connect_timeout=1.0))

    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(5)

    try:
        async with RawUpstream(reply) as upstream:
            with pytest.raises(UpstreamTimeout):
                await lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
            assert len(upstream.requests) == 1
    finally:
        await lean.close()


async def test_an_idle_connection_the_upstream_closed_is_not_used_and_nothing_is_sent_twice(
    client: LeanClient,
) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(ok(body=b'{"n":%d}' % n))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # the server's idle keep-alive timeout, without a Connection: close

    async with RawUpstream(reply) as upstream:
        first = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
        await asyncio.sleep(0.3)
        second = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
    assert (first.body, second.body) == (b'{"n":1}', b'{"n":2}')
    assert len(upstream.requests) == 2
    assert upstream.connections == 2


async def test_a_refused_connection_is_connect_failed(client: LeanClient) -> None:
    url = URL(f"http://127.0.0.1:{free_port()}/send")
    with pytest.raises(UpstreamConnectFailed):
        await client.request("POST", url, headers=HEADERS, body=b"{}")


async def test_a_header_carrying_a_line_break_is_refused_before_anything_is_sent(
    client: LeanClient,
) -> None:
    async with RawUpstream(keep_alive()) as upstream:
        with pytest.raises(UpstreamUnreachable):
            await client.request(
                "POST",
                upstream.url(),
                headers=[(b"X-Evil", b"a\r\nX-Injected: 1")],
                body=b"{}",
            )
    assert upstream.requests == []


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


async def test_https_with_a_trusted_certificate(certificate_authority: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    lean = LeanClient(Settings(upstream_timeout=5.0), ssl_context=client_context)
    try:
        async with RawUpstream(keep_alive(b'{"tls":true}'), server_context) as upstream:
            for _ in range(2):
                response = await lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
                assert response.body == b'{"tls":true}'
        assert upstream.connections == 1
        assert upstream.requests[0].startswith(b"POST /send HTTP/1.1\r\nHost: localhost:")
    finally:
        await lean.close()


async def test_https_with_an_untrusted_certificate_is_connect_failed(
    certificate_authority: trustme.CA,
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost").configure_cert(server_context)
    lean = LeanClient(Settings(upstream_timeout=5.0))  # the system trust store only
    try:
        async with RawUpstream(keep_alive(), server_context) as upstream:
            with pytest.raises(UpstreamConnectFailed):
                await lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
        assert upstream.requests == []
    finally:
        await lean.close()


async def test_connections_in_flight_are_bounded_by_the_setting() -> None:
    settings = dataclasses.replace(Settings(), upstream_connections=2, upstream_timeout=5.0)
    lean = LeanClient(settings)
    in_flight = 0
    most = 0

    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        writer.write(ok())
        await writer.drain()

    try:
        async with RawUpstream(reply) as upstream:
            await asyncio.gather(
                *(
                    lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
                    for _ in range(6)
                )
            )
        assert most == 2
        assert upstream.connections == 2
        assert len(upstream.requests) == 6
    finally:
        await lean.close()


UVLOOP_CASES = [
    test_relays_status_headers_and_body_and_reuses_the_connection,
    test_keeps_one_connection_alive_across_sends,
    test_reads_a_chunked_reply,
    test_reads_a_close_delimited_reply_and_does_not_reuse_that_connection,
    test_honours_connection_close,
    test_a_reply_cut_mid_body_is_unreachable_and_never_resent,
    test_a_connection_closed_unanswered_is_unreachable_and_never_resent,
    test_an_idle_connection_the_upstream_closed_is_not_used_and_nothing_is_sent_twice,
    test_a_refused_connection_is_connect_failed,
]


@pytest.mark.parametrize("case", UVLOOP_CASES, ids=lambda case: case.__name__)
def test_on_uvloop(case: Callable[[LeanClient], Awaitable[None]]) -> None:
    """The same cases on uvloop, which ``stopgate serve`` runs on when it is installed."""
    uvloop = pytest.importorskip("uvloop")

    async def run() -> None:
        lean = LeanClient(Settings(upstream_timeout=2.0, upstream_connect_timeout=1.0))
        try:
            await case(lean)
        finally:
            await lean.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())


def test_https_on_uvloop(certificate_authority: trustme.CA) -> None:
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_https_with_a_trusted_certificate(certificate_authority))


async def test_a_send_waiting_for_a_free_connection_times_out_unsent() -> None:
    settings = dataclasses.replace(Settings(), upstream_connections=1, upstream_timeout=0.3)
    lean = LeanClient(settings)

    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(5)

    try:
        async with RawUpstream(reply) as upstream:
            outcomes = await asyncio.gather(
                lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}"),
                lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}"),
                return_exceptions=True,
            )
            assert [type(o) for o in outcomes] == [UpstreamTimeout, UpstreamTimeout]
            assert len(upstream.requests) == 1
    finally:
        await lean.close()


async def test_a_reused_connection_times_out_at_its_current_sends_deadline() -> None:
    """One timer per connection serves its sends in turn: a slow reply to the second send on a
    connection fails at that send's deadline, neither the first's nor never."""
    settings = dataclasses.replace(Settings(), upstream_connections=1, upstream_timeout=0.4)
    lean = LeanClient(settings)

    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        if n == 2:
            await asyncio.sleep(5)
        writer.write(ok())
        await writer.drain()

    loop = asyncio.get_running_loop()
    try:
        async with RawUpstream(reply) as upstream:
            await lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
            await asyncio.sleep(0.25)  # the first send's deadline falls inside the second send
            started = loop.time()
            with pytest.raises(UpstreamTimeout):
                await lean.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
            waited = loop.time() - started
            assert upstream.connections == 1
    finally:
        await lean.close()
    assert 0.35 <= waited < 2.0


async def test_a_slot_handed_to_a_caller_that_gives_up_passes_to_the_next() -> None:
    slots = upstream_lean._Slots(1)
    assert slots.take_free()
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(slots.wait(loop.time() + 5))
    second = asyncio.create_task(slots.wait(loop.time() + 5))
    await asyncio.sleep(0)
    slots.give_back()  # handed to the first waiter ...
    first.cancel()  # ... which gives up before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert not slots.take_free()
    slots.give_back()
    assert slots.take_free()


async def test_a_caller_that_stops_waiting_for_a_slot_leaves_no_trace() -> None:
    slots = upstream_lean._Slots(1)
    assert slots.take_free()
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await slots.wait(loop.time() + 0.05)
    slots.give_back()
    assert slots.take_free()
    assert not slots.take_free()


async def test_through_the_gateway_an_idle_close_costs_no_send_and_duplicates_none(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    """Two Twilio sends through Stopgate while the carrier drops each idle connection."""

    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(
            b"HTTP/1.1 201 Created\r\n" + ok(body=b'{"sid":"SM%d"}' % n).split(b"\r\n", 1)[1]
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    account = "AC" + "1" * 32
    authorization = "Basic " + b64encode(f"{account}:token".encode()).decode()
    async with RawUpstream(reply) as upstream:
        settings = Settings(
            store=f"sqlite:///{tmp_path}/lean.db",
            twilio_upstream=str(upstream.url("")),
            twilio_auth_token=Secret("token"),
        )
        client = await aiohttp_client(FrontTestServer(create_app(settings)))
        sids = []
        for _ in range(2):
            response = await client.post(
                f"/2010-04-01/Accounts/{account}/Messages.json",
                data={"To": "+16505551234", "From": "+16505550100", "Body": "hello"},
                headers={"Authorization": authorization},
            )
            assert response.status == 201, await response.text()
            sids.append((await response.json())["sid"])
            await asyncio.sleep(0.3)
        await client.close()
    assert sids == ["SM1", "SM2"]
    assert len(upstream.requests) == 2
    assert upstream.connections == 2


async def test_an_interim_reply_is_skipped_for_the_real_one(client: LeanClient) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(body=b'{"after":"continue"}'))
        await writer.drain()

    async with RawUpstream(reply) as upstream:
        for _ in range(2):
            response = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
            assert (response.status, response.body) == (200, b'{"after":"continue"}')
            assert response.headers.get("Content-Type") == "application/json"
    assert upstream.connections == 1


async def test_a_reply_keeps_only_its_end_to_end_headers(client: LeanClient) -> None:
    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        body = b'{"ok":true}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nKeep-Alive: timeout=5\r\n"
            b"Connection: keep-alive, X-Private\r\nX-Private: secret\r\nX-Trace: t1\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async with RawUpstream(reply) as upstream:
        response = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
    assert sorted(response.headers) == ["Content-Type", "X-Trace"]


async def test_a_reply_over_the_size_cap_is_unreachable() -> None:
    client = LeanClient(
        Settings(upstream_timeout=2.0, upstream_connect_timeout=1.0), max_reply_bytes=1024
    )

    async def reply(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(ok(b"x" * (4096 if n == 1 else 1024)))
        await writer.drain()

    try:
        async with RawUpstream(reply) as upstream:
            with pytest.raises(UpstreamUnreachable, match="over 1024 bytes"):
                await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
            at_the_cap = await client.request("POST", upstream.url(), headers=HEADERS, body=b"{}")
    finally:
        await client.close()
    assert len(at_the_cap.body) == 1024
    assert len(upstream.requests) == 2
    assert upstream.connections == 2
