"""Consent change events: every change, whatever its source, reaches each subscriber signed,
in order, at least once - also after the subscriber was down."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.config import Secret, SubscriberSpec
from tests.conftest import BUSINESS, CUSTOMER, SIM, Gateway, MakeGateway
from tests.service.test_inbound import post_twilio, twilio_form

SECRET = "subscriber-secret-0123456789"


class Subscriber:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.down = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers["X-Stopgate-Signature"]
        parts = dict(part.split("=", 1) for part in header.split(","))
        expected = hmac.new(
            SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(parts["v1"], expected), "bad signature"
        if self.down:
            return web.Response(status=503)
        self.events.append(json.loads(body))
        return web.Response(status=204)

    def records(self) -> list[tuple[str, str, str, str]]:
        return [
            (r["from"], r["to"], r["optStatus"], r["source"])
            for event in self.events
            for r in event["body"]["records"]
        ]


@pytest.fixture
async def subscriber(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[Subscriber, str]:
    sub = Subscriber()
    app = web.Application()
    app.router.add_post("/events", sub.handle)
    server = await aiohttp_server(app)
    return sub, str(server.make_url("/events"))


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def gateway_with_subscriber(
    make_gateway: MakeGateway, subscriber: tuple[Subscriber, str]
) -> tuple[Gateway, Subscriber]:
    sub, url = subscriber
    gateway = await make_gateway(subscribers=(SubscriberSpec("crm", url, Secret(SECRET)),))
    return gateway, sub


async def test_api_and_keyword_changes_become_signed_events(
    gateway_with_subscriber: tuple[Gateway, Subscriber],
) -> None:
    gateway, sub = gateway_with_subscriber
    await gateway.opt_out()
    await post_twilio(gateway, twilio_form("START"))
    await wait_until(lambda: len(sub.records()) == 2)
    assert sub.records() == [
        (BUSINESS, CUSTOMER, "OptOut", "Api"),
        (BUSINESS, CUSTOMER, "OptIn", "Recipient"),
    ]
    event = sub.events[0]
    assert event["event"] == "/restapi/v2/accounts/~/sms/consents"
    assert event["uuid"] and event["timestamp"].endswith("Z")


async def test_a_batch_is_one_event_not_one_per_record(
    gateway_with_subscriber: tuple[Gateway, Subscriber],
) -> None:
    gateway, sub = gateway_with_subscriber
    await gateway.set_consent(
        *({"from": BUSINESS, "to": f"+1650555{n:04d}", "optStatus": "OptOut"} for n in range(50))
    )
    await wait_until(lambda: len(sub.records()) == 50)
    assert len(sub.events) == 1


async def test_events_wait_out_a_subscriber_outage_and_arrive_in_order(
    gateway_with_subscriber: tuple[Gateway, Subscriber],
) -> None:
    gateway, sub = gateway_with_subscriber
    sub.down = True
    for status in ("OptOut", "OptIn", "OptOut"):
        await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": status})
    await asyncio.sleep(0.5)
    assert sub.events == []
    sub.down = False
    await wait_until(lambda: len(sub.records()) == 3, within=15)
    assert [r[2] for r in sub.records()] == ["OptOut", "OptIn", "OptOut"]


async def test_no_subscribers_no_events(gateway: Gateway) -> None:
    from gateway.keys import STORE

    await gateway.opt_out()
    assert await gateway.app[STORE].outbox_stats(now_us=0) == (0, None)


async def test_changes_are_pushed_to_ringcentral_when_asked(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(
        ringcentral_consent_push=True,
        ringcentral_client_id=SIM.rc_client_id,
        ringcentral_client_secret=Secret(SIM.rc_client_secret),
        ringcentral_jwt=Secret(SIM.rc_jwt),
    )
    await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn"})
    token = await gateway.rc_token()

    async def pushed() -> list[dict[str, Any]]:
        async with gateway.client.session.get(
            gateway.sim.make_url("/restapi/v2/accounts/~/sms/consents"),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            if response.status != 200:
                return []
            return list((await response.json()).get("records", []))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (records := await pushed()):
        assert loop.time() < deadline, "nothing reached RingCentral's consent API"
        await asyncio.sleep(0.1)
    assert [(r["from"], r["to"], r["optStatus"]) for r in records] == [
        (BUSINESS, CUSTOMER, "OptIn")
    ]
