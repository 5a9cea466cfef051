"""Quiet hours and frequency caps on the send path: a real gateway app (with a clock set to the
hour each test needs) in front of the carrier simulator, real dialect bodies, both dialects;
and two gateways sharing one PostgreSQL store."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.clock import Clock
from gateway.config import Settings
from policy.categories import Category
from policy.frequency_caps import FrequencyCaps
from policy.quiet_hours import QuietHours, QuietHoursRule, quiet_hours_from_config
from tests.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    OTHER_BUSINESS,
    RC_BATCH,
    RC_SEND,
    SIM,
    TWILIO_SEND,
    Gateway,
    basic,
)
from tests.contract.test_store import postgres_server  # noqa: F401
from tests.support import postgres
from tests.support.front import FrontTestServer

NEW_YORK = "+12125550111"
MIAMI = "+13055550111"
TULSA = "+19185550111"
SERVICE = "MG" + "5c" * 16
QUIET = QuietHours(QuietHoursRule(enabled=True))
CAPS = FrequencyCaps(enabled=True)
# 2026-07-01 is EDT (UTC-4): 22:00 in New York and Miami is 02:00 UTC the next day.
AT_22_NEW_YORK = dt.datetime(2026, 7, 2, 2, 0, tzinfo=dt.UTC).timestamp()
AT_NOON_NEW_YORK = dt.datetime(2026, 7, 1, 16, 0, tzinfo=dt.UTC).timestamp()
AT_2030_NEW_YORK = dt.datetime(2026, 7, 2, 0, 30, tzinfo=dt.UTC).timestamp()
HOUR = 3600.0


class Time:
    """The gateway's wall clock in a test: set, and moved, by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Build = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def build(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    sim_server: Any,
    settings_for: Callable[..., Settings],
) -> Build:
    async def make(time: Time, **overrides: Any) -> Gateway:
        app = create_app(settings_for(**overrides), clock=Clock(time))
        return Gateway(await aiohttp_client(FrontTestServer(app)), sim_server, app)

    return make


async def twilio_send(
    gateway: Gateway, to: str, *, from_: str = BUSINESS, category: str | None = None
) -> Any:
    """A Twilio send as the Twilio API takes it, with the category header when given."""
    headers = basic(SIM.twilio_account_sid, SIM.twilio_auth_token)
    if category is not None:
        headers["X-Stopgate-Category"] = category
    form = {"To": to, "From": from_, "Body": "Summer sale!"}
    return await gateway.client.post(TWILIO_SEND, data=form, headers=headers)


def rc_sms(*to: str, from_: str = BUSINESS) -> dict[str, Any]:
    return {
        "from": {"phoneNumber": from_},
        "to": [{"phoneNumber": n} for n in to],
        "text": "Summer sale!",
    }


async def blocked_reasons(gateway: Gateway) -> list[tuple[str, str]]:
    response = await gateway.client.get(
        "/admin/blocked", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    return [(r["to"], r["reason"]) for r in (await response.json())["records"]]


async def metric(gateway: Gateway, line_start: str) -> float:
    text = await (await gateway.client.get("/metrics")).text()
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    return sum(values)


# ---- quiet hours ----------------------------------------------------------------------------


async def test_a_marketing_send_at_22_local_is_refused_in_twilios_shape(build: Build) -> None:
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=QUIET)
    response = await gateway.twilio_send(NEW_YORK, body="Summer sale!")
    assert response.status == 400
    body = await response.json()
    assert body["code"] == 30007 and body["status"] == 400
    assert body["reason"] == "quiet-hours"
    assert body["more_info"] == "https://www.twilio.com/docs/errors/30007"
    assert NEW_YORK in body["message"] and "sending hours" in body["message"]
    assert response.headers["X-Stopgate-Decision"] == "blocked; reason=quiet-hours"
    assert await gateway.delivered() == []
    assert await blocked_reasons(gateway) == [(NEW_YORK, "quiet-hours")]
    blocked = 'stopgate_blocked_recipients_total{dialect="twilio",reason="quiet-hours"}'
    assert await metric(gateway, blocked) == 1
    sends = 'stopgate_sends_total{decision="blocked",dialect="twilio",reason="quiet-hours"}'
    assert await metric(gateway, sends) == 1


async def test_the_same_send_at_noon_goes_out(build: Build) -> None:
    gateway = await build(Time(AT_NOON_NEW_YORK), quiet_hours=QUIET)
    response = await gateway.twilio_send(NEW_YORK)
    assert response.status == 201
    assert response.headers["X-Stopgate-Decision"] == "allowed"


async def test_transactional_sends_are_exempt(build: Build) -> None:
    gateway = await build(
        Time(AT_22_NEW_YORK),
        quiet_hours=QUIET,
        categories={BUSINESS: Category.TRANSACTIONAL, SERVICE: Category.TRANSACTIONAL},
        messaging_services={SERVICE: (OTHER_BUSINESS,)},
    )
    assert (await gateway.twilio_send(NEW_YORK)).status == 201  # by business number
    by_service = await gateway.twilio_send(NEW_YORK, from_=None, MessagingServiceSid=SERVICE)
    assert by_service.status == 201
    # A number of the service inherits the service's category.
    assert (await gateway.twilio_send(NEW_YORK, from_=OTHER_BUSINESS)).status == 201
    # The header overrides the configuration, both ways.
    marketing = await twilio_send(gateway, NEW_YORK, from_=OTHER_BUSINESS, category="marketing")
    assert marketing.status == 400
    assert len(await gateway.delivered()) == 3


async def test_the_category_header_overrides_the_default(build: Build) -> None:
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=QUIET)
    token = await gateway.rc_token()
    response = await gateway.client.post(
        RC_SEND,
        json=rc_sms(NEW_YORK),
        headers={"Authorization": f"bearer {token}", "X-Stopgate-Category": "Transactional"},
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("dialect", ["twilio", "ringcentral"])
async def test_an_unknown_category_header_is_a_400_with_a_reason(
    build: Build, dialect: str
) -> None:
    gateway = await build(Time(AT_NOON_NEW_YORK), frequency_caps=CAPS)
    headers = {"X-Stopgate-Category": "promo"}
    if dialect == "twilio":
        response = await twilio_send(gateway, NEW_YORK, category="promo")
        body = await response.json()
        assert body["reason"] == "invalid-category" and body["code"] == 21600
    else:
        token = await gateway.rc_token()
        response = await gateway.client.post(
            RC_SEND, json=rc_sms(NEW_YORK), headers={"Authorization": f"bearer {token}", **headers}
        )
        body = await response.json()
        assert body["reason"] == "invalid-category" and body["errorCode"] == "CMN-101"
        assert body["errors"][0]["parameterName"] == "X-Stopgate-Category"
    assert response.status == 400
    assert "marketing, transactional" in body["message"]
    assert await gateway.delivered() == []


async def test_ringcentral_refusal_and_florida_window(build: Build) -> None:
    gateway = await build(Time(AT_2030_NEW_YORK), quiet_hours=QUIET)
    token = await gateway.rc_token()
    assert (await gateway.rc_post(RC_SEND, rc_sms(NEW_YORK), token)).status == 200
    refused = await gateway.rc_post(RC_SEND, rc_sms(MIAMI), token)  # 20:30: after 20:00 in FL
    assert refused.status == 400
    body = await refused.json()
    assert body["errorCode"] == "SMS-STOPGATE-451" and body["reason"] == "quiet-hours"
    assert body["errors"][0]["parameterName"] == "to"
    assert refused.headers["X-Stopgate-Decision"] == "blocked; reason=quiet-hours"
    # A group send with one recipient outside its window is refused whole.
    group = await gateway.rc_post(RC_SEND, rc_sms(NEW_YORK, MIAMI), token)
    assert group.status == 400
    assert [m["to"] for m in await gateway.delivered()] == [NEW_YORK]


async def test_a_batch_drops_the_recipients_outside_their_window(build: Build) -> None:
    gateway = await build(Time(AT_2030_NEW_YORK), quiet_hours=QUIET)
    batch = {"from": BUSINESS, "text": "Sale", "messages": [{"to": [MIAMI]}, {"to": [NEW_YORK]}]}
    response = await gateway.rc_post(RC_BATCH, batch)
    assert response.status == 200, await response.text()
    assert response.headers["X-Stopgate-Decision"] == "partial; reason=quiet-hours; dropped=1"
    reply = await response.json()
    [rejected] = reply["rejected"]
    assert (rejected["index"], rejected["to"], rejected["errorCode"]) == (
        0,
        [MIAMI],
        "SMS-STOPGATE-451",
    )
    assert [m["to"] for m in await gateway.delivered()] == [NEW_YORK]


async def test_shadow_mode_forwards_and_marks_would_block(build: Build) -> None:
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=QUIET, mode="shadow")
    response = await gateway.twilio_send(NEW_YORK)
    assert response.status == 201
    assert response.headers["X-Stopgate-Decision"] == "would-block; reason=quiet-hours"
    assert await blocked_reasons(gateway) == [(NEW_YORK, "would-block:quiet-hours")]
    assert len(await gateway.delivered()) == 1


async def test_a_business_number_may_have_its_own_window(build: Build) -> None:
    quiet = quiet_hours_from_config({"numbers": {OTHER_BUSINESS: {"window": "09:00-23:00"}}})
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=quiet)
    assert (await gateway.twilio_send(NEW_YORK)).status == 201  # BUSINESS: no quiet hours
    assert (await gateway.twilio_send(NEW_YORK, from_=OTHER_BUSINESS)).status == 201
    assert (await gateway.twilio_send(MIAMI, from_=OTHER_BUSINESS)).status == 400  # FL 20:00


async def test_a_consent_block_keeps_its_own_refusal(build: Build) -> None:
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=QUIET, frequency_caps=CAPS)
    await gateway.opt_out(to=NEW_YORK)
    response = await gateway.twilio_send(NEW_YORK)
    assert (await response.json())["code"] == 21610
    assert response.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out"
    text = await (await gateway.client.get("/metrics")).text()
    assert "take_send_slots" not in text  # refused before any slot was taken


# ---- frequency caps ---------------------------------------------------------------------------


async def test_the_fourth_marketing_send_to_florida_within_24_hours_is_capped(
    build: Build,
) -> None:
    time = Time(AT_NOON_NEW_YORK)
    gateway = await build(time, frequency_caps=CAPS)
    for _ in range(3):
        assert (await gateway.twilio_send(MIAMI)).status == 201
        time.now += HOUR
    # Transactional sends do not count, and are not capped.
    assert (await twilio_send(gateway, MIAMI, category="transactional")).status == 201
    fourth = await gateway.twilio_send(MIAMI)
    assert fourth.status == 400
    body = await fourth.json()
    assert (body["code"], body["reason"]) == (30007, "frequency-cap")
    assert fourth.headers["X-Stopgate-Decision"] == "blocked; reason=frequency-cap"
    # New York has no cap by default.
    for _ in range(5):
        assert (await gateway.twilio_send(NEW_YORK)).status == 201
    # 24 hours after the first send, one slot is free again.
    time.now = AT_NOON_NEW_YORK + 24 * HOUR
    assert (await gateway.twilio_send(MIAMI)).status == 201
    assert (await gateway.twilio_send(MIAMI)).status == 400
    assert await blocked_reasons(gateway) == [(MIAMI, "frequency-cap")] * 2
    capped = 'stopgate_blocked_recipients_total{dialect="twilio",reason="frequency-cap"}'
    assert await metric(gateway, capped) == 2


async def test_refused_sends_do_not_use_up_the_cap(build: Build) -> None:
    gateway = await build(Time(AT_NOON_NEW_YORK), frequency_caps=CAPS)
    await gateway.opt_out(to=MIAMI)
    for _ in range(4):
        assert (await gateway.twilio_send(MIAMI)).status == 400  # opted out: not counted
    await gateway.set_consent({"from": BUSINESS, "to": MIAMI, "optStatus": "OptIn"})
    await gateway.sim_fault(mode="5xx", count=2)
    for _ in range(2):
        assert (await gateway.twilio_send(MIAMI)).status >= 500  # the carrier refused: given back
    for _ in range(3):
        assert (await gateway.twilio_send(MIAMI)).status == 201
    assert (await gateway.twilio_send(MIAMI)).status == 400


async def test_a_group_send_over_the_cap_gives_back_the_other_slots(build: Build) -> None:
    gateway = await build(Time(AT_NOON_NEW_YORK), frequency_caps=CAPS)
    token = await gateway.rc_token()
    for _ in range(3):
        assert (await gateway.rc_post(RC_SEND, rc_sms(MIAMI), token)).status == 200
    refused = await gateway.rc_post(RC_SEND, rc_sms(TULSA, MIAMI), token)
    assert refused.status == 400
    assert (await refused.json())["errorCode"] == "SMS-STOPGATE-429"
    # Tulsa's slot was given back: three sends to Tulsa still go out.
    for _ in range(3):
        assert (await gateway.rc_post(RC_SEND, rc_sms(TULSA), token)).status == 200
    assert (await gateway.rc_post(RC_SEND, rc_sms(TULSA), token)).status == 400


async def test_a_batch_drops_the_capped_recipients(build: Build) -> None:
    gateway = await build(Time(AT_NOON_NEW_YORK), frequency_caps=CAPS)
    batch = {
        "from": BUSINESS,
        "text": "Sale",
        "messages": [{"to": [MIAMI]}, {"to": [MIAMI]}, {"to": [NEW_YORK]}, {"to": [MIAMI]}],
    }
    first = await gateway.rc_post(RC_BATCH, batch)
    assert first.status == 200 and first.headers["X-Stopgate-Decision"] == "allowed"
    second = await gateway.rc_post(RC_BATCH, batch)
    assert second.headers["X-Stopgate-Decision"] == "partial; reason=frequency-cap; dropped=3"
    reply = await second.json()
    assert [(r["index"], r["errorCode"]) for r in reply["rejected"]] == [
        (0, "SMS-STOPGATE-429"),
        (1, "SMS-STOPGATE-429"),
        (3, "SMS-STOPGATE-429"),
    ]


async def test_both_features_off_touch_nothing(build: Build) -> None:
    gateway = await build(Time(AT_22_NEW_YORK))
    for _ in range(5):
        assert (await gateway.twilio_send(MIAMI)).status == 201
    # With both rules off the category header is not even read.
    assert (await twilio_send(gateway, MIAMI, category="promo")).status == 201
    text = await (await gateway.client.get("/metrics")).text()
    assert "take_send_slots" not in text


async def test_two_gateways_sharing_a_postgres_store_count_together(
    build: Build,
    postgres_server: str,  # noqa: F811
) -> None:
    time = Time(AT_NOON_NEW_YORK)
    with postgres.schema(postgres_server) as url:
        first = await build(time, store=url, frequency_caps=CAPS)
        second = await build(time, store=url, frequency_caps=CAPS)
        assert (await first.twilio_send(MIAMI)).status == 201
        assert (await second.twilio_send(MIAMI)).status == 201
        token = await first.rc_token()
        assert (await first.rc_post(RC_SEND, rc_sms(MIAMI), token)).status == 200
        fourth = await second.twilio_send(MIAMI)
        assert fourth.status == 400
        assert (await fourth.json())["reason"] == "frequency-cap"
        await first.client.close()
        await second.client.close()


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ({"mode": "timeout", "count": 1, "delay_seconds": 5}, 504, "upstream-timeout"),
        ({"mode": "reset", "count": 1}, 502, "upstream-unreachable"),
    ],
)
async def test_a_carrier_that_times_out_or_drops_the_connection_keeps_the_slot(
    build: Build, fault: dict[str, Any], status: int, reason: str
) -> None:
    gateway = await build(Time(AT_NOON_NEW_YORK), frequency_caps=CAPS, upstream_timeout=0.5)
    await gateway.sim_fault(**fault)
    failed = await gateway.twilio_send(MIAMI)
    assert failed.status == status
    assert (await failed.json())["reason"] == reason
    # The message may have gone out: the slot stays counted, so two more sends fill the cap.
    for _ in range(2):
        assert (await gateway.twilio_send(MIAMI)).status == 201
    capped = await gateway.twilio_send(MIAMI)
    assert capped.status == 400
    assert (await capped.json())["reason"] == "frequency-cap"


@pytest.mark.parametrize("dialect", ["twilio", "ringcentral"])
async def test_a_store_that_cannot_count_refuses_the_send_with_503(
    build: Build, tmp_path: Any, dialect: str
) -> None:
    path = tmp_path / "stopgate.db"
    gateway = await build(
        Time(AT_NOON_NEW_YORK), frequency_caps=CAPS, store=f"sqlite:///{path}?busy_timeout=0.2"
    )
    token = await gateway.rc_token()
    # Another process holds the database's write lock: consent can still be read, but no
    # frequency-cap slot can be taken, so the send cannot be counted and is refused.
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        if dialect == "twilio":
            response = await gateway.twilio_send(MIAMI)
            body = await response.json()
            assert (body["code"], body["status"]) == (20503, 503)
        else:
            response = await gateway.rc_post(RC_SEND, rc_sms(MIAMI), token)
            body = await response.json()
            assert body["errorCode"] == "STOPGATE-503", body
        assert response.status == 503
        assert body["reason"] == "consent-unavailable"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await gateway.delivered() == []
    # With the lock gone the store counts again, from zero: the refused send took no slot.
    for _ in range(3):
        assert (await gateway.twilio_send(MIAMI)).status == 201
    assert (await gateway.twilio_send(MIAMI)).status == 400
