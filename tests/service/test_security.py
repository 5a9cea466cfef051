"""Security of a running gateway against a hostile caller, over the aiohttp test client and raw
sockets:

* every admin and consents route (the list comes from the app's own router, so a new route is
  covered the day it is added) refuses a missing or wrong token with 401 and an under-privileged
  one with 403;
* path tricks (dot segments, percent-encoded dots and slashes, absolute-URI request lines, a
  ``Host`` header naming another server) neither reach an admin route without auth nor make
  Stopgate call any host but its configured upstream: a second, "evil" server listening on
  127.0.0.1 must receive nothing;
* request smuggling (conflicting ``Content-Length`` / ``Transfer-Encoding``, duplicate lengths,
  obs-fold...) is refused with 400 and never forwarded;
* webhook secrets rotate without downtime (primary and secondary both valid, anything else 403),
  replays have no second effect;
* the console's sign-in is rate-limited per client address (429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from gateway.app import create_app
from gateway.config import (
    ConfigError,
    Secret,
    Settings,
    SubscriberSpec,
    TokenSpec,
    load_settings,
)
from gateway.keys import STORE
from gateway.openapi import DOCUMENT
from gateway.ratelimit import FailureLimiter
from tests.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    CUSTOMER,
    RC_SEND,
    SIM,
    TWILIO_SEND,
    Gateway,
    MakeGateway,
    basic,
)
from tests.support.rawhttp import exchange

AUDITOR_TOKEN = "test-auditor-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# --- every protected route refuses the wrong caller --------------------------------------

# Routes of Stopgate's own API that are open on purpose: the console's page and assets (no data),
# sign-in (it takes the token) and sign-out (without a session it only clears a cookie).
OPEN_BY_DESIGN = {
    ("GET", "/admin/"),
    ("GET", "/admin/static/console.js"),
    ("GET", "/admin/static/console.css"),
    ("POST", "/admin/session"),
    ("DELETE", "/admin/session"),
}


def _protected_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the admin and consents API, read from the app's router."""
    app = create_app(Settings())
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "*") or not path.startswith(("/admin", "/restapi/v2/")):
            continue
        routes.add((route.method, path))
    return sorted(routes - OPEN_BY_DESIGN)


PROTECTED = _protected_routes()


def test_the_protected_routes_are_the_documented_ones() -> None:
    documented = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method != "parameters" and operation.get("security")
    }
    assert set(PROTECTED) == documented
    assert len(PROTECTED) >= 12


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "~", path)


def _body(path: str) -> dict[str, Any]:
    if path.endswith("/erase"):
        return {"to": CUSTOMER}
    return {"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut", "note": "t"}]}


@pytest.fixture
async def roles(make_gateway: MakeGateway) -> Gateway:
    auditor = TokenSpec("audit", hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest(), "auditor")
    return await make_gateway(tokens=(auditor,), ringcentral_account_id=SIM.rc_account_id)


@pytest.mark.parametrize(
    ("credentials", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, 401),
        ({"Authorization": f"bearer {ADMIN_TOKEN[:-1]}"}, 401),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Cookie": "stopgate_console=forged-session-id"}, 401),
        ({"Authorization": "Bearer a-ringcentral-token-of-nobody"}, 401),
    ],
    ids=["none", "unknown", "longer", "shorter", "basic", "empty", "forged-cookie", "rc-unknown"],
)
@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_every_protected_route_refuses_a_missing_or_wrong_token(
    roles: Gateway, method: str, path: str, credentials: dict[str, str], status: int
) -> None:
    response = await roles.client.request(
        method, _concrete(path), json=_body(path), headers=credentials
    )
    assert response.status == status, await response.text()
    assert await response.text()  # a reason, in the route's own error shape
    assert "records" not in await response.text()
    assert (
        await roles.app[STORE].history(to_key=CUSTOMER, from_key=None, after_id=None, limit=100)
        == []
    )


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_the_auditor_reads_but_every_write_is_403(
    roles: Gateway, method: str, path: str
) -> None:
    auditor = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
    response = await roles.client.request(
        method, _concrete(path), json=_body(path), headers=auditor
    )
    if method == "GET":
        assert response.status == 200, await response.text()
    else:
        assert response.status == 403, await response.text()
        assert "forbidden" in await response.text()
    assert (
        await roles.app[STORE].history(to_key=CUSTOMER, from_key=None, after_id=None, limit=100)
        == []
    )


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_the_admin_gets_past_authentication(roles: Gateway, method: str, path: str) -> None:
    headers = {**ADMIN, "Origin": str(roles.client.make_url("")).rstrip("/")}
    response = await roles.client.request(
        method, _concrete(path), json=_body(path), headers=headers
    )
    assert response.status not in (401, 403), await response.text()


# --- path tricks, a Host elsewhere, and an evil server that must hear nothing -------------


@dataclass
class Recorder:
    """A plain HTTP server that records every request it gets and answers 200."""

    server: TestServer | None = None
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.raw_path, request.host))
        return web.json_response({"id": "recorded", "uri": request.raw_path})

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"{self.server.host}:{self.server.port}"


async def _recorder(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Recorder:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    recorder.server = await aiohttp_server(app)
    return recorder


@pytest.fixture
async def evil(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Recorder:
    return await _recorder(aiohttp_server)


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Recorder:
    return await _recorder(aiohttp_server)


@pytest.fixture
async def proxied(make_gateway: MakeGateway, upstream: Recorder) -> Gateway:
    """A gateway whose only upstream (both carriers) is the recorder."""
    url = f"http://{upstream.address}"
    return await make_gateway(ringcentral_upstream=url, twilio_upstream=url)


def address(gateway: Gateway) -> tuple[str, int]:
    server = gateway.client.server
    return str(server.host), int(server.port or 0)


ADMIN_TRICKS = [
    "/restapi/../admin/blocked",
    "/restapi/v1.0/../../admin/blocked",
    "/restapi/%2e%2e/admin/blocked",
    "/restapi/%2E%2E/admin/consents",
    "/restapi/..%2Fadmin/blocked",
    "/restapi/..%2fadmin%2fblocked",
    "/admin%2Fblocked",
    "/admin%2fconsents%2fexport",
    "/%61dmin/blocked",
    "/ADMIN/blocked",
    "//admin/blocked",
    "/admin//blocked",
    "/admin/./blocked",
    "/admin/blocked;x=1",
    "/admin/blocked/",
    "/admin/blocked%00",
    "/restapi/v2/accounts/~/sms/consents/../consents",
    "/restapi/v2/accounts/~/sms/%63onsents",
    "/restapi/v2/accounts/~/sms/consents%2Fexport",
    "/2010-04-01/../admin/blocked",
    "{evil}/admin/blocked",
    "http://{evil}/admin/blocked",
    "http://{evil}/restapi/v2/accounts/~/sms/consents",
    "http://{evil}/restapi/../admin/blocked",
    "@{evil}/../admin/blocked",
    "admin/blocked",
    "*",
]


@pytest.mark.parametrize("target", ADMIN_TRICKS)
async def test_path_tricks_never_reach_admin_data_without_auth(
    proxied: Gateway, upstream: Recorder, evil: Recorder, target: str
) -> None:
    await proxied.opt_out()
    target = target.format(evil=evil.address)
    request = f"GET {target} HTTP/1.1\r\nHost: {evil.address}\r\nConnection: close\r\n\r\n"
    answer = await exchange(*address(proxied), request.encode(), wait=15)
    assert answer.status in (400, 401, 404), (target, answer.raw[:400])
    assert CUSTOMER.encode() not in answer.raw and b"16505550111" not in answer.raw
    assert evil.seen == []
    # Anything forwarded went to the configured upstream, under a carrier prefix.
    for _, path, host in upstream.seen:
        assert host == upstream.address and path.startswith(("/restapi/v1", "/2010-04-01/"))


SEND_TRICKS = [
    ("POST", "http://{evil}" + TWILIO_SEND),
    ("POST", "//{evil}" + TWILIO_SEND),
    ("POST", "@{evil}" + TWILIO_SEND),
    ("POST", "{evil}" + TWILIO_SEND),
    ("POST", ".{evil}/.." + TWILIO_SEND),
    ("POST", TWILIO_SEND),
    ("POST", "/2010-04-01/Accounts/%2F%2F{evil}/Messages.json"),
    ("POST", "/2010-04-01/Accounts/" + SIM.twilio_account_sid + "/Messages.json/..%2F..%2F..%2F"),
    ("GET", "/restapi/v1.0/account/~/extension/~/message-store?x=http://{evil}/"),
    ("GET", "/restapi/v1.0/%2F%2F{evil}/x"),
    ("GET", "/restapi/v1.0/\\\\{evil}/x"),
    ("GET", "/restapi/v1.0/account/~/..%2F..%2F..%2F@{evil}/x"),
    ("GET", "http://{evil}/restapi/v1.0/account/~"),
]


@pytest.mark.parametrize(("method", "target"), SEND_TRICKS)
async def test_no_request_makes_stopgate_call_another_host(
    proxied: Gateway, upstream: Recorder, evil: Recorder, method: str, target: str
) -> None:
    await proxied.opt_out()
    target = target.format(evil=evil.address)
    form = urlencode({"To": CUSTOMER, "From": BUSINESS, "Body": "hi"})
    auth = basic(SIM.twilio_account_sid, SIM.twilio_auth_token)["Authorization"]
    request = (
        f"{method} {target} HTTP/1.1\r\nHost: {evil.address}\r\nAuthorization: {auth}\r\n"
        f"X-Forwarded-Host: {evil.address}\r\nForwarded: host={evil.address}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n{form}"
    )
    answer = await exchange(*address(proxied), request.encode(), wait=15)
    assert answer.status is not None and answer.status < 500, (target, answer.raw[:400])
    assert evil.seen == []
    for _, path, host in upstream.seen:
        assert host == upstream.address, (target, upstream.seen)
        # The opted-out customer's send never went anywhere.
        assert "Messages.json" not in path or answer.status != 201


async def test_a_host_header_elsewhere_changes_neither_the_upstream_nor_the_signature(
    make_gateway: MakeGateway, upstream: Recorder, evil: Recorder
) -> None:
    gateway = await make_gateway(twilio_auth_token=Secret(SIM.twilio_auth_token))
    # The webhook's signature covers the URL as received: signed for this gateway's own
    # address, a request claiming to be for the evil host does not verify.
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": CUSTOMER, "To": BUSINESS, "Body": "STOP"}
    signed = RequestValidator(SIM.twilio_auth_token).compute_signature(
        str(gateway.client.make_url("/webhooks/twilio")), form
    )
    response = await gateway.client.post(
        "/webhooks/twilio",
        data=urlencode(form),
        headers={
            "X-Twilio-Signature": signed,
            "Content-Type": "application/x-www-form-urlencoded",
            "Host": evil.address,
        },
    )
    assert response.status == 403
    assert evil.seen == []


# --- request smuggling ----------------------------------------------------------------------

_FORWARDED = "/restapi/v1.0/account/~/extension/~/message-store"
_SMUGGLED = b"GET /restapi/v1.0/account/~/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
_HEAD = b"POST " + _FORWARDED.encode() + b" HTTP/1.1\r\nHost: x\r\n"
SMUGGLING = {
    "CL then TE": _HEAD
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + _SMUGGLED,
    "TE then CL": _HEAD
    + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "duplicate CL": _HEAD + b"Content-Length: 0\r\nContent-Length: 59\r\n\r\n" + _SMUGGLED,
    "CL list": _HEAD + b"Content-Length: 0, 59\r\n\r\n" + _SMUGGLED,
    "CL with sign": _HEAD + b"Content-Length: +5\r\n\r\nhello",
    "CL hex": _HEAD + b"Content-Length: 0x5\r\n\r\nhello",
    "TE not chunked last": _HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "TE unknown": _HEAD + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "TE twice": _HEAD
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "TE space before colon": _HEAD + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "TE obs-fold": _HEAD + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "obs-fold": _HEAD + b"Content-Length: 0\r\nX-A: 1\r\n continued\r\n\r\n",
    "chunk size hex prefix": _HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "chunk size bare LF": _HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    "bare LF lines": _HEAD.replace(b"\r\n", b"\n") + b"Content-Length: 0\n\n",
    "NUL in a header": _HEAD + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "CR in a header": _HEAD + b"X-A: a\rb\r\nContent-Length: 0\r\n\r\n",
    "TE on HTTP/1.0": _HEAD.replace(b"HTTP/1.1", b"HTTP/1.0")
    + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
async def test_smuggling_attempts_are_400_and_never_forwarded(
    proxied: Gateway, upstream: Recorder, name: str
) -> None:
    answer = await exchange(*address(proxied), SMUGGLING[name], wait=15)
    assert answer.statuses == [400], (name, answer.raw[:400])
    assert upstream.seen == []


async def test_a_clean_request_on_the_same_gateway_is_forwarded(
    proxied: Gateway, upstream: Recorder
) -> None:
    answer = await exchange(
        *address(proxied), _HEAD + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}", wait=15
    )
    assert answer.status == 200
    assert [path for _, path, _ in upstream.seen] == [_FORWARDED]


# --- webhook secrets: forged, rotated, replayed -------------------------------------------

PRIMARY, SECONDARY, RETIRED = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture
async def rotating(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway(
        twilio_auth_token=Secret(SIM.twilio_auth_token),
        twilio_auth_token_secondary=Secret(SECONDARY),
        ringcentral_verification_token=Secret(PRIMARY),
        ringcentral_verification_token_secondary=Secret(SECONDARY),
    )


async def _twilio_webhook(gateway: Gateway, token: str, form: dict[str, str]) -> Any:
    url = str(gateway.client.make_url("/webhooks/twilio"))
    return await gateway.client.post(
        "/webhooks/twilio",
        data=urlencode(form),
        headers={
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, form),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def _twilio_stop(sender: str = CUSTOMER) -> dict[str, str]:
    return {"MessageSid": "SM" + uuid.uuid4().hex, "From": sender, "To": BUSINESS, "Body": "STOP"}


def _rc_stop(sender: str = CUSTOMER) -> dict[str, Any]:
    return {
        "uuid": uuid.uuid4().hex,
        "event": "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS",
        "body": {
            "id": str(uuid.uuid4().int % 10**12),
            "from": {"phoneNumber": sender},
            "to": [{"phoneNumber": BUSINESS}],
            "type": "SMS",
            "direction": "Inbound",
            "subject": "STOP",
        },
    }


async def _changes(gateway: Gateway, to: str) -> int:
    return len(await gateway.app[STORE].history(to_key=to, from_key=None, after_id=None, limit=100))


async def test_twilio_primary_and_secondary_auth_tokens_are_both_valid(rotating: Gateway) -> None:
    for number, token in (("+16505550121", SIM.twilio_auth_token), ("+16505550122", SECONDARY)):
        response = await _twilio_webhook(rotating, token, _twilio_stop(number))
        assert response.status == 200, await response.text()
        assert await _changes(rotating, number) == 1
    forged = await _twilio_webhook(rotating, RETIRED, _twilio_stop("+16505550123"))
    assert forged.status == 403
    assert (await forged.json())["error"]["reason"] == "bad-signature"
    assert await _changes(rotating, "+16505550123") == 0


async def test_twilio_sends_accept_either_auth_token_and_no_other(rotating: Gateway) -> None:
    for token, status in ((SIM.twilio_auth_token, 201), (SECONDARY, None), (RETIRED, 401)):
        response = await rotating.client.post(
            TWILIO_SEND,
            data={"To": CUSTOMER, "From": BUSINESS, "Body": "x"},
            headers=basic(SIM.twilio_account_sid, token),
        )
        if status is None:
            # Accepted by Stopgate's local check; the simulated carrier knows only its one
            # token and answers for itself.
            assert response.status != 500
        else:
            assert response.status == status, (token, await response.text())


async def test_ringcentral_primary_and_secondary_verification_tokens(rotating: Gateway) -> None:
    for number, token in (("+16505550131", PRIMARY), ("+16505550132", SECONDARY)):
        response = await rotating.client.post(
            "/webhooks/ringcentral", json=_rc_stop(number), headers={"Verification-Token": token}
        )
        assert response.status == 200, await response.text()
        assert await _changes(rotating, number) == 1
    for headers in ({"Verification-Token": RETIRED}, {}, {"Verification-Token": PRIMARY + "x"}):
        forged = await rotating.client.post(
            "/webhooks/ringcentral", json=_rc_stop("+16505550133"), headers=headers
        )
        assert forged.status == 403
    assert await _changes(rotating, "+16505550133") == 0


async def test_replayed_webhooks_of_both_carriers_have_no_second_effect(rotating: Gateway) -> None:
    form = _twilio_stop("+16505550141")
    event = _rc_stop("+16505550142")
    for _ in range(3):
        assert (await _twilio_webhook(rotating, SECONDARY, form)).status == 200
        response = await rotating.client.post(
            "/webhooks/ringcentral", json=event, headers={"Verification-Token": SECONDARY}
        )
        assert response.status == 200
    assert await _changes(rotating, "+16505550141") == 1
    assert await _changes(rotating, "+16505550142") == 1


# --- carrier credentials: the caller learns nothing ---------------------------------------


@pytest.mark.parametrize("opted_out", [True, False])
async def test_a_caller_without_carrier_credentials_gets_the_carriers_own_401(
    gateway: Gateway, opted_out: bool
) -> None:
    """Same status and body whether the pair is opted out or not, and the same as the carrier
    gives for those credentials directly: nothing about consent leaks."""
    if opted_out:
        await gateway.opt_out()
    session = gateway.client.session
    form = {"To": CUSTOMER, "From": BUSINESS, "Body": "x"}
    rc_body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "x"}
    for path, kwargs in [
        (TWILIO_SEND, {"data": form, "headers": basic(SIM.twilio_account_sid, "wrong")}),
        (TWILIO_SEND, {"data": form, "headers": basic("SK" + "0" * 32, "wrong")}),
        (TWILIO_SEND, {"data": form}),
        (RC_SEND, {"json": rc_body, "headers": {"Authorization": "Bearer not-a-token"}}),
        (RC_SEND, {"json": rc_body}),
    ]:
        through = await gateway.client.post(path, **kwargs)
        async with session.post(gateway.sim.make_url(path), **kwargs) as direct:
            assert (through.status, await through.read()) == (direct.status, await direct.read())
        assert through.status == 401
        assert "X-Stopgate-Decision" not in through.headers
    assert await gateway.delivered() == []


# --- console sign-in is rate-limited --------------------------------------------------------


async def test_sign_in_failures_are_limited_per_address(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(sign_in_failures_per_minute=10)
    for attempt in range(10):
        response = await gateway.client.post("/admin/session", json={"token": f"guess-{attempt}"})
        assert response.status == 401
    for token in ("guess-11", ADMIN_TOKEN):
        # Limited before the token is looked at: even the right one is refused now.
        response = await gateway.client.post("/admin/session", json={"token": token})
        assert response.status == 429
        assert (await response.json())["error"]["reason"] == "too-many-attempts"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Bearer tokens on the data routes are not a way around it into a session, and other
    # routes keep working for callers who hold a token.
    assert (await gateway.client.get("/admin/blocked", headers=ADMIN)).status == 200


async def test_successful_sign_ins_are_not_limited(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(sign_in_failures_per_minute=3)
    for _ in range(10):
        response = await gateway.client.post("/admin/session", json={"token": ADMIN_TOKEN})
        assert response.status == 200


def test_the_failure_window_slides() -> None:
    now = [1000.0]
    limiter = FailureLimiter(3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
        now[0] += 10
    assert limiter.retry_after("10.0.0.1") == 30  # the first failure leaves the window at 1060
    assert limiter.retry_after("10.0.0.2") is None  # per address
    now[0] = 1060.5
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10


async def test_subscriber_events_verify_with_the_new_or_the_previous_secret(
    make_gateway: MakeGateway, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    new, old = "subscriber-secret-new-0123", "subscriber-secret-old-0123"
    received: list[tuple[str, bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((request.headers["X-Stopgate-Signature"], await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", receive)
    server = await aiohttp_server(app)
    spec = SubscriberSpec("crm", str(server.make_url("/events")), Secret(new), Secret(old))
    gateway = await make_gateway(subscribers=(spec,))
    await gateway.opt_out()
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.05)
    [(header, body)] = received
    parts = [part.split("=", 1) for part in header.split(",")]
    timestamp = next(v for k, v in parts if k == "t")
    presented = [v for k, v in parts if k == "v1"]

    def valid_for(secret: str) -> bool:
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        return any(hmac.compare_digest(digest.hexdigest(), p) for p in presented)

    assert valid_for(new) and valid_for(old)
    assert not valid_for("subscriber-secret-other-01")


def test_a_short_previous_subscriber_secret_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "stopgate.toml"
    config.write_text(
        "[[subscribers]]\n"
        'url = "http://x/e"\nsecret = "0123456789abcdef"\nprevious_secret = "short"\n'
    )
    with pytest.raises(ConfigError, match="previous_secret"):
        load_settings(config_file=str(config), environ={})
