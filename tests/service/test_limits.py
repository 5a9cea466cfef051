"""Server limits, proven over real sockets: a client that trickles its headers or its body is cut
off within the configured time while other clients are served; header floods and oversize bodies
are refused with clear status codes, and nothing reaches the carrier."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from gateway.config import ConfigError, Settings
from tests.conftest import CUSTOMER, RC_SEND, SIM, TWILIO_SEND, Gateway, MakeGateway
from tests.support.rawhttp import Answer, exchange

LIMIT = 1.0
# The event loop runs the tests and the gateway on a loaded machine: generous slack above the
# limit, but far below aiohttp's own hour-long keep-alive.
SLACK = 4.0
AUTH = (
    "Basic "
    + base64.b64encode(f"{SIM.twilio_account_sid}:{SIM.twilio_auth_token}".encode()).decode()
)


def address(gateway: Gateway) -> tuple[str, int]:
    server = gateway.client.server
    return str(server.host), int(server.port or 0)


async def served_meanwhile(gateway: Gateway, until: asyncio.Task[Answer]) -> int:
    """Ordinary requests on fresh connections while ``until`` runs: how many were answered."""
    served = 0
    while not until.done():
        response = await gateway.client.get("/healthz")
        assert response.status == 200
        served += 1
        await asyncio.sleep(0.1)
    return served


@pytest.fixture
async def limited(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway(header_timeout=LIMIT, body_timeout=LIMIT, max_body_bytes=64 * 1024)


async def test_trickled_headers_are_cut_off_while_others_are_served(limited: Gateway) -> None:
    head = f"POST {TWILIO_SEND} HTTP/1.1\r\nHost: x\r\n".encode()
    trickle = [(head, 0.2)] + [(b"X-Slow: %d\r\n" % i, 0.2) for i in range(100)]
    slow = asyncio.create_task(exchange(*address(limited), trickle, wait=30))
    served = await served_meanwhile(limited, slow)
    answer = await slow
    assert LIMIT * 0.9 <= answer.closed_after <= LIMIT + SLACK, answer.closed_after
    assert answer.status is None  # closed before any request was read: nothing answered
    assert served >= 3
    assert await limited.delivered() == []


async def test_an_idle_connection_is_closed_within_the_header_timeout(limited: Gateway) -> None:
    answer = await exchange(*address(limited), b"", wait=30)
    assert answer.closed_after <= LIMIT + SLACK
    assert answer.raw == b""


async def test_a_kept_alive_connection_gets_a_fresh_header_timeout(limited: Gateway) -> None:
    ping = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = await exchange(*address(limited), [(ping, LIMIT * 0.7), (ping, 0.0)], wait=30)
    assert answer.statuses == [200, 200], (answer.raw, answer.closed_after)
    assert answer.closed_after <= LIMIT * 0.7 + LIMIT + SLACK


@pytest.mark.parametrize("path", [TWILIO_SEND, RC_SEND, "/webhooks/twilio", "/admin/session"])
async def test_a_trickled_body_is_cut_off_and_nothing_is_forwarded(
    limited: Gateway, path: str
) -> None:
    form = f"To={CUSTOMER}&From=%2B16505550100&Body=".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    trickle = [(head + form, 0.2)] + [(b"x", 0.2) for _ in range(200)]
    slow = asyncio.create_task(exchange(*address(limited), trickle, wait=30))
    served = await served_meanwhile(limited, slow)
    answer = await slow
    assert LIMIT * 0.9 <= answer.closed_after <= LIMIT + SLACK, answer.closed_after
    # Either cut off unanswered, or refused at once (the route needs no body to say no) and
    # the rest of the trickle drained no longer than the body timeout.
    assert answer.status in (None, 415), answer.raw[:300]
    assert served >= 3
    assert await limited.delivered() == []


async def test_a_body_arriving_in_time_is_served(limited: Gateway) -> None:
    form = f"To={CUSTOMER}&From=%2B16505550100&Body=hi".encode()
    head = (
        f"POST {TWILIO_SEND} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\n\r\n"
    ).encode()
    answer = await exchange(*address(limited), [(head, LIMIT * 0.5), (form, 0.0)], wait=30)
    assert answer.status == 201, answer.raw[:500]
    assert len(await limited.delivered()) == 1


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("too many headers", b"".join(b"X-Flood-%d: 1\r\n" % i for i in range(150))),
        ("one huge header", b"X-Huge: " + b"a" * 20_000 + b"\r\n"),
        ("huge header name", b"X-" + b"a" * 20_000 + b": 1\r\n"),
    ],
)
async def test_header_floods_are_400_and_the_connection_closed(
    limited: Gateway, name: str, request_bytes: bytes
) -> None:
    raw = f"POST {TWILIO_SEND} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n".encode()
    answer = await exchange(*address(limited), raw + request_bytes + b"\r\n", wait=30)
    assert answer.status == 400, (name, answer.raw[:300])
    assert answer.closed_after <= SLACK
    assert await limited.delivered() == []


async def test_a_huge_request_line_is_refused(limited: Gateway) -> None:
    raw = b"GET /restapi/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = await exchange(*address(limited), raw, wait=30)
    assert answer.status in (400, 414), answer.raw[:300]


async def test_header_limits_follow_the_settings(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(max_headers=20, max_header_bytes=2048)
    twenty_five = b"".join(b"X-H-%d: 1\r\n" % i for i in range(25))
    flood = await exchange(
        *address(gateway), b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + twenty_five + b"\r\n"
    )
    assert flood.status == 400
    long = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 3000 + b"\r\n\r\n"
    assert (await exchange(*address(gateway), long)).status == 400
    fine = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: "
        + b"a" * 1500
        + b"\r\n\r\n"
    )
    assert (await exchange(*address(gateway), fine)).status == 200


@pytest.mark.parametrize(
    ("path", "content_type", "headers"),
    [
        (TWILIO_SEND, "application/x-www-form-urlencoded", {"Authorization": AUTH}),
        ("/webhooks/twilio", "application/x-www-form-urlencoded", {}),
        ("/webhooks/ringcentral", "application/json", {}),
        ("/restapi/v2/accounts/~/sms/consents", "application/json", {}),
    ],
)
async def test_oversize_bodies_are_413_with_a_reason(
    limited: Gateway, path: str, content_type: str, headers: dict[str, str]
) -> None:
    method = "PATCH" if "consents" in path else "POST"
    if "consents" in path:
        headers = {"Authorization": "Bearer test-admin-token"}
    started = time.monotonic()
    response = await limited.client.request(
        method,
        path,
        data=b"a=" + b"x" * (100 * 1024),
        headers={"Content-Type": content_type, **headers},
    )
    assert response.status == 413, await response.text()
    body = await response.json()
    reason = body.get("reason") or body.get("error", {}).get("reason")
    assert reason == "body-too-large", body
    assert time.monotonic() - started < 10
    assert await limited.delivered() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"header_timeout": 0},
        {"body_timeout": -1},
        {"max_headers": 3},
        {"max_header_bytes": 100},
        {"sign_in_failures_per_minute": 0},
    ],
)
def test_limit_settings_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Settings(**bad)  # type: ignore[arg-type]
