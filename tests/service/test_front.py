"""The lean front (gateway/front.py) over real sockets: which requests it serves itself, how it
hands a connection to aiohttp mid-stream, and that no way of framing a send gets one past the
consent check."""

from __future__ import annotations

import asyncio
import base64
import gzip
import urllib.parse

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from gateway.front import serialise, serialise_relayed
from gateway.keys import INDEX
from gateway.send_request import RelayedReply
from gateway.server import FrontServer
from tests.conftest import BUSINESS, CUSTOMER, SIM, TWILIO_SEND, Gateway, MakeGateway
from tests.support.rawhttp import exchange

OTHER = "+16505550122"
AUTH = (
    "Basic "
    + base64.b64encode(f"{SIM.twilio_account_sid}:{SIM.twilio_auth_token}".encode()).decode()
)


HAND_OVER = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
"""A request the front leaves to aiohttp: what follows it on the connection is aiohttp's."""


def send_bytes(
    to: str,
    *,
    version: str = "1.1",
    extra: str = "",
    chunked: bool = False,
    body_text: str = "hello",
) -> bytes:
    body = urllib.parse.urlencode({"To": to, "From": BUSINESS, "Body": body_text}).encode()
    head = (
        f"POST {TWILIO_SEND} HTTP/{version}\r\nHost: gateway\r\nAuthorization: {AUTH}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n" + extra
    )
    if chunked:
        return (
            head.encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
    return head.encode() + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def address(gateway: Gateway) -> tuple[str, int]:
    server = gateway.client.server
    return str(server.host), int(server.port or 0)


def front_of(gateway: Gateway) -> FrontServer:
    server = gateway.client.server.runner.server  # type: ignore[union-attr]
    assert isinstance(server, FrontServer)
    return server


async def delivered_to(gateway: Gateway, to: str) -> int:
    return len(await gateway.delivered(to))


async def test_sends_pipelined_on_one_connection_are_answered_in_order(gateway: Gateway) -> None:
    await gateway.opt_out(OTHER)
    data = send_bytes(CUSTOMER) + send_bytes(OTHER) + send_bytes(CUSTOMER)
    answer = await exchange(*address(gateway), data, wait=3)
    assert answer.statuses == [201, 400, 201]
    assert answer.raw.count(b"X-Stopgate-Decision: allowed") == 2
    assert b'"code": 21610' in answer.raw or b'"code":21610' in answer.raw
    assert await delivered_to(gateway, CUSTOMER) == 2
    assert await delivered_to(gateway, OTHER) == 0


async def test_a_connection_handed_to_aiohttp_mid_stream_still_checks_every_send(
    gateway: Gateway,
) -> None:
    """Send (front), then a GET (hands over), then a send to an opted-out pair (aiohttp's
    route), all in one write: the last is refused and never reaches the carrier."""
    await gateway.opt_out(OTHER)
    data = send_bytes(CUSTOMER) + HAND_OVER + send_bytes(OTHER) + send_bytes(CUSTOMER)
    answer = await exchange(*address(gateway), data, wait=3)
    assert answer.statuses == [201, 200, 400, 201]
    assert await delivered_to(gateway, OTHER) == 0
    assert await delivered_to(gateway, CUSTOMER) == 2


@pytest.mark.parametrize(
    "framing",
    ["chunked", "http/1.0", "expect-100", "head in pieces", "body in pieces"],
)
async def test_every_framing_of_a_send_to_an_opted_out_pair_is_refused(
    gateway: Gateway, framing: str
) -> None:
    await gateway.opt_out(OTHER)
    pieces: bytes | list[tuple[bytes, float]]
    if framing == "chunked":
        pieces = send_bytes(OTHER, chunked=True)
    elif framing == "http/1.0":
        pieces = send_bytes(OTHER, version="1.0")
    elif framing == "expect-100":
        pieces = send_bytes(OTHER, extra="Expect: 100-continue\r\n")
    elif framing == "head in pieces":
        raw = send_bytes(OTHER)
        pieces = [(raw[i : i + 7], 0.01) for i in range(0, len(raw), 7)]
    else:
        raw = send_bytes(OTHER)
        cut = raw.index(b"\r\n\r\n") + 6
        pieces = [(raw[:cut], 0.05), (raw[cut:], 0.0)]
    answer = await exchange(*address(gateway), pieces, wait=3)
    assert answer.statuses[-1] == 400, answer.raw[:500]
    assert b"21610" in answer.raw
    assert await delivered_to(gateway, OTHER) == 0


async def test_connection_close_is_honoured(gateway: Gateway) -> None:
    answer = await exchange(
        *address(gateway), send_bytes(CUSTOMER, extra="Connection: close\r\n"), wait=5
    )
    assert answer.statuses == [201]
    assert b"Connection: close" in answer.raw
    assert answer.closed_after < 4


async def test_answers_carry_date_length_and_decision(gateway: Gateway) -> None:
    answer = await exchange(*address(gateway), send_bytes(CUSTOMER), wait=1)
    head, _, body = answer.raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 201 Created"
    names = {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip() for line in lines[1:]}
    assert int(names[b"content-length"]) == len(body)
    assert b"date" in names and names[b"x-stopgate-decision"] == b"allowed"
    assert names[b"x-request-id"]


async def test_a_body_over_the_limit_is_refused_in_the_carriers_shape(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway(max_body_bytes=1024)
    answer = await exchange(*address(gateway), send_bytes(CUSTOMER, body_text="x" * 2000), wait=3)
    assert answer.statuses == [413]
    assert await delivered_to(gateway, CUSTOMER) == 0


async def test_a_trickled_body_is_cut_at_the_body_timeout_and_never_sent(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway(body_timeout=0.5)
    raw = send_bytes(CUSTOMER)
    cut = raw.index(b"\r\n\r\n") + 4
    pieces = [(raw[:cut], 0.0)] + [(raw[i : i + 1], 0.2) for i in range(cut, len(raw))]
    answer = await exchange(*address(gateway), pieces, wait=5)
    assert answer.statuses == []
    assert answer.closed_after < 3
    assert await delivered_to(gateway, CUSTOMER) == 0


async def test_an_idle_keep_alive_connection_is_closed_at_the_header_timeout(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway(header_timeout=0.5)
    answer = await exchange(*address(gateway), send_bytes(CUSTOMER), wait=5)
    assert answer.statuses == [201]
    assert 0.4 < answer.closed_after < 3


async def test_a_send_whose_client_leaves_is_still_decided_and_delivered(
    gateway: Gateway,
) -> None:
    await gateway.client.session.post(
        gateway.sim.make_url("/sim/faults"), json={"mode": "slow", "delay_seconds": 0.5}
    )
    answer = await exchange(*address(gateway), send_bytes(CUSTOMER), wait=0.1)
    assert answer.statuses == []
    await asyncio.sleep(1.0)
    await gateway.client.session.post(gateway.sim.make_url("/sim/faults"), json={"mode": "none"})
    assert await delivered_to(gateway, CUSTOMER) == 1


async def test_shutdown_lets_a_send_in_progress_answer(gateway: Gateway) -> None:
    await gateway.client.session.post(
        gateway.sim.make_url("/sim/faults"), json={"mode": "slow", "delay_seconds": 0.5}
    )
    reader, writer = await asyncio.open_connection(*address(gateway))
    idle_reader, idle_writer = await asyncio.open_connection(*address(gateway))
    writer.write(send_bytes(CUSTOMER))
    await writer.drain()
    await asyncio.sleep(0.1)
    front = front_of(gateway)
    assert front.tasks
    front.pre_shutdown()
    await front.shutdown(5.0)
    answer = await reader.read()
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert await idle_reader.read() == b""  # the idle connection was closed
    writer.close()
    idle_writer.close()


@pytest.mark.parametrize(
    "authorization",
    [b"Basic \xc3\xa9\xc3\xa9", b"Basic \xff\xfe", b"Basic !!!", b"Basic"],
    ids=["utf-8 text", "not utf-8", "not base64", "empty"],
)
async def test_credentials_no_carrier_would_take_are_refused_not_a_500(
    gateway: Gateway, authorization: bytes
) -> None:
    body = urllib.parse.urlencode({"To": CUSTOMER, "From": BUSINESS, "Body": "hi"}).encode()
    raw = (
        f"POST {TWILIO_SEND} HTTP/1.1\r\nHost: gateway\r\n".encode()
        + b"Authorization: "
        + authorization
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = await exchange(*address(gateway), raw, wait=3)
    assert answer.status is not None and 400 <= answer.status < 500, answer.raw[:300]
    assert await delivered_to(gateway, CUSTOMER) == 0


@pytest.mark.parametrize(
    ("status", "body", "headers", "length", "content_type"),
    [
        (201, b"{}", {"Content-Type": "application/json"}, "2", "application/json"),
        (204, None, {}, None, None),
        (304, b"", {"ETag": "e"}, None, None),
        (200, b"", {}, "0", None),
        (400, b"x", {}, "1", "application/octet-stream"),
    ],
)
def test_answers_are_framed_like_aiohttp_frames_them(
    status: int,
    body: bytes | None,
    headers: dict[str, str],
    length: str | None,
    content_type: str | None,
) -> None:
    """No Content-Length on 204/304 (RFC 9110), no default type on an empty body."""
    raw = serialise(web.Response(status=status, body=body, headers=headers), keep_alive=True)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert (fields.get("content-length"), fields.get("content-type")) == (length, content_type)
    assert "date" in fields
    assert rest == (body or b"")


_HEADER_NAMES = st.sampled_from(
    [
        b"Content-Type",
        b"content-type",
        b"Date",
        b"Server",
        b"X-Request-Id",
        b"x-request-id",
        b"X-Stopgate-Decision",
        b"Twilio-Request-Id",
        b"ETag",
        b"Content-Length",
        b"Connection",
    ]
)
_HEADER_VALUES = st.binary(max_size=12).filter(lambda v: v.strip() == v)
_OWN = st.lists(
    st.tuples(
        st.sampled_from(["X-Stopgate-Decision", "X-Request-Id", "X-Stopgate-Segments"]),
        st.text(max_size=12).filter(lambda v: v.strip() == v),
    ),
    max_size=3,
    unique_by=lambda pair: pair[0],
)


def _framed(raw: bytes) -> tuple[bytes, list[bytes], bytes]:
    """Status line, header lines in order but Date (which may tick between two calls), body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, [line for line in lines if not line.startswith(b"Date:")], body


@given(
    status=st.sampled_from([200, 201, 202, 204, 304, 400, 404, 429, 500, 503]),
    carrier=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=6),
    body=st.binary(max_size=20),
    own=_OWN,
    keep_alive=st.booleans(),
)
def test_a_relayed_reply_is_framed_as_the_same_reply_through_aiohttp_would_be(
    status: int,
    carrier: list[tuple[bytes, bytes]],
    body: bytes,
    own: list[tuple[str, str]],
    keep_alive: bool,
) -> None:
    """The front writes a relayed carrier reply from its raw bytes; the answer is the one the
    general path (decode, ``web.Response``, :func:`serialise`) gives, a line break refused both
    ways alike."""
    reply = RelayedReply(status, carrier, body, own)
    try:
        expected = serialise(reply.to_response(), keep_alive)
    except ValueError:
        with pytest.raises(ValueError, match="line break"):
            serialise_relayed(reply, keep_alive)
        return
    assert _framed(serialise_relayed(reply, keep_alive)) == _framed(expected)


def twilio_stop_bytes(sender: str, *, path: str = "/webhooks/twilio") -> bytes:
    form = {
        "MessageSid": f"SM{sender[-4:]}{'0' * 28}",
        "AccountSid": SIM.twilio_account_sid,
        "From": sender,
        "To": BUSINESS,
        "Body": "STOP",
    }
    signed = RequestValidator(SIM.twilio_auth_token).compute_signature(
        f"http://gateway{path}", form
    )
    body = urllib.parse.urlencode(form).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nX-Twilio-Signature: {signed}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answer_lines(raw: bytes) -> tuple[list[bytes], bytes]:
    """(the head's lines but ``Date`` and ``Server``, sorted; the body) of the last answer in
    ``raw``. aiohttp names itself in ``Server``; the front names no server, on a send either."""
    last = raw[raw.rindex(b"HTTP/1.1 ") :]
    head, _, body = last.partition(b"\r\n\r\n")
    lines = [
        line for line in head.split(b"\r\n") if not line.lower().startswith((b"date:", b"server:"))
    ]
    return sorted(lines), body


async def test_a_webhook_is_answered_alike_by_the_front_and_after_a_hand_over(
    gateway: Gateway,
) -> None:
    """The front serves a carrier webhook itself; the same webhook on a connection handed to
    aiohttp (a GET first) goes through aiohttp's route. Same answer, same durable opt-out."""
    front_side = await exchange(*address(gateway), twilio_stop_bytes(CUSTOMER), wait=3)
    handed_over = await exchange(*address(gateway), HAND_OVER + twilio_stop_bytes(OTHER), wait=3)
    assert front_side.statuses == [200]
    assert handed_over.statuses == [200, 200]
    assert answer_lines(front_side.raw) == answer_lines(handed_over.raw)
    # Each took the path meant: the front names no server, aiohttp does.
    assert b"\r\nServer:" not in front_side.raw
    assert b"\r\nServer:" in handed_over.raw
    assert b"X-Stopgate-Keyword: opt_out" in front_side.raw
    for customer in (CUSTOMER, OTHER):
        records = await gateway.app[INDEX].store.get_records(customer, [BUSINESS])
        assert records[BUSINESS].status.value == "OptOut"


async def test_a_webhook_spelled_otherwise_is_left_to_aiohttp(gateway: Gateway) -> None:
    """Only the exact path is the front's; aiohttp answers any other spelling as it always did
    (its router does not match a trailing slash)."""
    answer = await exchange(
        *address(gateway), twilio_stop_bytes(CUSTOMER, path="/webhooks/twilio/"), wait=3
    )
    assert answer.statuses == [404]


@pytest.mark.parametrize("repeated", ["Host: gateway", "Content-Type: text/plain"])
async def test_a_header_allowed_once_but_repeated_is_refused_as_aiohttp_refuses_it(
    gateway: Gateway, repeated: str
) -> None:
    """A send or a webhook repeating a header that may appear once is not the front's to judge:
    aiohttp answers 400 for it, whichever path the request would have taken."""
    send = send_bytes(CUSTOMER, extra=repeated + "\r\n")
    webhook = twilio_stop_bytes(OTHER).replace(
        b"Host: gateway\r\n", b"Host: gateway\r\n" + repeated.encode() + b"\r\n", 1
    )
    for data in (send, webhook):
        answer = await exchange(*address(gateway), data, wait=3)
        assert answer.statuses == [400], answer.raw[:200]
    assert await delivered_to(gateway, CUSTOMER) == 0
    assert await gateway.app[INDEX].store.get_records(OTHER, [BUSINESS]) == {}


def gzip_send_bytes(to: str) -> bytes:
    body = gzip.compress(
        urllib.parse.urlencode({"To": to, "From": BUSINESS, "Body": "hi"}).encode()
    )
    head = (
        f"POST {TWILIO_SEND} HTTP/1.1\r\nHost: gateway\r\nAuthorization: {AUTH}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_a_send_with_an_encoded_body_is_refused_415_on_either_path(gateway: Gateway) -> None:
    """aiohttp decodes a gzip body before the route; forwarding it with its Content-Encoding
    still on made the carrier fail (a 500 relayed back). Refused instead, in the carrier's
    shape, as the first request of a connection (which the front hands over for its
    Content-Encoding) and after a hand-over alike; nothing reaches the carrier."""
    first = await exchange(*address(gateway), gzip_send_bytes(CUSTOMER), wait=3)
    handed_over = await exchange(*address(gateway), HAND_OVER + gzip_send_bytes(CUSTOMER), wait=3)
    assert first.statuses == [415]
    assert handed_over.statuses == [200, 415]
    assert b"unsupported-content-encoding" in first.raw
    assert await delivered_to(gateway, CUSTOMER) == 0


async def test_an_encoded_webhook_is_decoded_as_aiohttp_always_did(gateway: Gateway) -> None:
    """The front leaves a webhook with a Content-Encoding to aiohttp, which decodes it."""
    plain = twilio_stop_bytes(CUSTOMER)
    head, _, body = plain.partition(b"\r\n\r\n")
    packed = gzip.compress(body)
    head = head.replace(b"Content-Length: %d" % len(body), b"Content-Length: %d" % len(packed))
    answer = await exchange(
        *address(gateway), head + b"\r\nContent-Encoding: gzip\r\n\r\n" + packed, wait=3
    )
    assert answer.statuses == [200]
    records = await gateway.app[INDEX].store.get_records(CUSTOMER, [BUSINESS])
    assert records[BUSINESS].status.value == "OptOut"
