"""Brands (one consent across carriers), opt-in mode per number or brand, and suppression lists,
through a real gateway app: sends in each carrier's own wire format, webhooks signed as the
carriers sign them (the Twilio SDK's validator), the carrier simulator as the only fake."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.config import BrandSpec, Secret
from gateway.keys import SETTINGS, STORE
from gateway.store.sqlite import SQLiteStore
from policy.consent import DefaultConsent, OptOutScope, SuppressionKind
from tests.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    CONSENTS,
    CUSTOMER,
    OTHER_BUSINESS,
    RC_BATCH,
    RC_SEND,
    SIM,
    Gateway,
    MakeGateway,
)
from tests.service.test_block_reason_metrics import blocked_recipients, increase
from tests.service.test_inbound import VERIFICATION, post_rc, post_twilio, rc_event, twilio_form

TWILIO_NUMBER = BUSINESS  # the brand's Twilio number
RC_NUMBER = OTHER_BUSINESS  # the brand's RingCentral number
ELSEWHERE = "+16505550177"  # a number of no brand
ACME = BrandSpec("brand:acme", (TWILIO_NUMBER, RC_NUMBER))
FEED_WAIT = 0.3
"""Longer than the change feed needs (20 ms polls) to flush this gateway's cache."""


async def brand_gateway(make_gateway: MakeGateway, *brands: BrandSpec, **extra: Any) -> Gateway:
    return await make_gateway(
        brands=brands or (ACME,),
        ringcentral_verification_token=Secret(VERIFICATION),
        ringcentral_client_id=SIM.rc_client_id,
        ringcentral_client_secret=Secret(SIM.rc_client_secret),
        ringcentral_jwt=Secret(SIM.rc_jwt),
        **extra,
    )


async def rc_send(gateway: Gateway, sender: str, to: str = CUSTOMER) -> Any:
    body = {"from": {"phoneNumber": sender}, "to": [{"phoneNumber": to}], "text": "news"}
    return await gateway.rc_post(RC_SEND, body)


def decision(response: Any) -> str:
    return str(response.headers["X-Stopgate-Decision"])


# --- brands --------------------------------------------------------------------------------------


async def test_a_twilio_stop_blocks_the_brands_ringcentral_number(
    make_gateway: MakeGateway,
) -> None:
    gateway = await brand_gateway(make_gateway)
    assert (await rc_send(gateway, RC_NUMBER)).status == 200  # cached as allowed
    stop = await post_twilio(gateway, twilio_form("STOP", to=TWILIO_NUMBER))
    assert stop.status == 200
    counted = await blocked_recipients(gateway)
    refused = await rc_send(gateway, RC_NUMBER)
    assert refused.status == 400
    assert (await refused.json())["errorCode"] == "SMS-RC-413"
    assert decision(refused) == "blocked; reason=opt-out-brand"
    twilio = await gateway.twilio_send(CUSTOMER, from_=RC_NUMBER)
    assert (twilio.status, (await twilio.json())["code"]) == (400, 21610)
    assert (await gateway.twilio_send(CUSTOMER, from_=ELSEWHERE)).status == 201
    assert increase(counted, await blocked_recipients(gateway)) == {
        ("ringcentral", "opt-out-brand"): 1,
        ("twilio", "opt-out-brand"): 1,
    }
    records = await gateway.app[STORE].get_records(CUSTOMER, [TWILIO_NUMBER, "brand:acme"])
    assert {k: r.status.value for k, r in records.items()} == {
        TWILIO_NUMBER: "OptOut",
        "brand:acme": "OptOut",
    }


async def test_a_start_on_another_number_of_the_brand_reopens_the_brand(
    make_gateway: MakeGateway,
) -> None:
    gateway = await brand_gateway(make_gateway)
    await post_twilio(gateway, twilio_form("STOP", to=TWILIO_NUMBER))
    start = await post_rc(gateway, rc_event("START", to=(RC_NUMBER,)))
    assert start.status == 200
    assert (await rc_send(gateway, RC_NUMBER)).status == 200
    # The STOP was brand-wide, so the START is too: the customer can always opt back in.
    assert (await gateway.twilio_send(CUSTOMER, from_=TWILIO_NUMBER)).status == 201


async def test_a_stop_all_still_needs_a_start_per_brand(make_gateway: MakeGateway) -> None:
    gateway = await brand_gateway(make_gateway)
    await post_twilio(gateway, twilio_form("STOP ALL", to=TWILIO_NUMBER))
    await post_twilio(gateway, twilio_form("START", to=TWILIO_NUMBER))
    assert (await rc_send(gateway, RC_NUMBER)).status == 200
    assert (await gateway.twilio_send(CUSTOMER, from_=ELSEWHERE)).status == 400


async def test_a_pair_scoped_brand_keeps_stops_to_the_number(make_gateway: MakeGateway) -> None:
    pair_scoped = BrandSpec("brand:acme", (TWILIO_NUMBER, RC_NUMBER), OptOutScope.PAIR)
    gateway = await brand_gateway(make_gateway, pair_scoped)
    await post_twilio(gateway, twilio_form("STOP", to=TWILIO_NUMBER))
    assert (await rc_send(gateway, RC_NUMBER)).status == 200
    # A brand record written through the API still governs every number of the brand.
    await gateway.set_consent({"from": "brand:acme", "to": CUSTOMER, "optStatus": "OptOut"})
    assert decision(await rc_send(gateway, RC_NUMBER)) == "blocked; reason=opt-out-brand"


async def test_the_consents_api_shows_and_accepts_brand_keys(make_gateway: MakeGateway) -> None:
    gateway = await brand_gateway(make_gateway)
    await gateway.set_consent({"from": "Brand:ACME", "to": CUSTOMER, "optStatus": "OptOut"})
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listed = await (await gateway.client.get(CONSENTS, headers=auth)).json()
    assert [(r["from"], r["optStatus"]) for r in listed["records"]] == [("brand:acme", "OptOut")]
    export = await (await gateway.client.get(CONSENTS + "/export", headers=auth)).text()
    assert "brand:acme,+16505550111,OptOut" in export
    bad = await gateway.client.patch(
        CONSENTS, json={"records": [{"from": "brand:", "to": CUSTOMER}]}, headers=auth
    )
    assert bad.status == 400


async def test_a_batch_drops_brand_blocked_recipients(make_gateway: MakeGateway) -> None:
    gateway = await brand_gateway(make_gateway)
    await post_twilio(gateway, twilio_form("STOP", to=TWILIO_NUMBER))
    await post_twilio(gateway, twilio_form("STOP", to=TWILIO_NUMBER, sender="+16505550113"))
    counted = await blocked_recipients(gateway)
    body = {
        "from": RC_NUMBER,
        "text": "sale",
        "messages": [{"to": [CUSTOMER]}, {"to": ["+16505550112"]}, {"to": ["+16505550113"]}],
    }
    response = await gateway.rc_post(RC_BATCH, body)
    assert response.status == 200, await response.text()
    assert decision(response).startswith("partial; reason=opt-out-brand")
    rejected = (await response.json())["rejected"]
    assert [(r["to"], r["errorCode"]) for r in rejected] == [
        ([CUSTOMER], "SMS-RC-413"),
        (["+16505550113"], "SMS-RC-413"),
    ]
    assert increase(counted, await blocked_recipients(gateway)) == {
        ("ringcentral", "opt-out-brand"): 2
    }


# --- opt-in mode ---------------------------------------------------------------------------------


async def test_an_opt_in_number_refuses_until_start(make_gateway: MakeGateway) -> None:
    gateway = await brand_gateway(
        make_gateway, consent_defaults={TWILIO_NUMBER: DefaultConsent.REQUIRE_OPT_IN}
    )
    counted = await blocked_recipients(gateway)
    refused = await gateway.twilio_send(CUSTOMER, from_=TWILIO_NUMBER)
    assert (refused.status, decision(refused)) == (400, "blocked; reason=no-opt-in")
    assert increase(counted, await blocked_recipients(gateway)) == {("twilio", "no-opt-in"): 1}
    assert (await rc_send(gateway, RC_NUMBER)).status == 200  # the brand's other number: allow
    start = await post_twilio(gateway, twilio_form("SUBSCRIBE", to=TWILIO_NUMBER))
    assert start.headers["X-Stopgate-Keyword"] == "opt_in"
    assert (await gateway.twilio_send(CUSTOMER, from_=TWILIO_NUMBER)).status == 201


async def test_an_opt_in_brand_refuses_on_every_carrier_until_start(
    make_gateway: MakeGateway,
) -> None:
    marketing = BrandSpec(
        "brand:acme",
        (TWILIO_NUMBER, RC_NUMBER),
        consent_default=DefaultConsent.REQUIRE_OPT_IN,
    )
    gateway = await brand_gateway(make_gateway, marketing)
    counted = await blocked_recipients(gateway)
    group = {
        "from": {"phoneNumber": RC_NUMBER},
        "to": [{"phoneNumber": CUSTOMER}, {"phoneNumber": "+16505550112"}],
        "text": "news",
    }
    assert (await gateway.rc_post(RC_SEND, group)).status == 400
    refused = await rc_send(gateway, RC_NUMBER)
    assert (refused.status, (await refused.json())["errorCode"]) == (400, "SMS-RC-413")
    assert decision(refused) == "blocked; reason=no-opt-in"
    assert increase(counted, await blocked_recipients(gateway)) == {("ringcentral", "no-opt-in"): 3}
    assert (await gateway.twilio_send(CUSTOMER, from_=ELSEWHERE)).status == 201
    await post_rc(gateway, rc_event("UNSTOP", to=(RC_NUMBER,)))
    assert (await rc_send(gateway, RC_NUMBER)).status == 200
    assert (await gateway.twilio_send(CUSTOMER, from_=TWILIO_NUMBER)).status == 201


async def test_a_number_can_leave_its_opt_in_brand(make_gateway: MakeGateway) -> None:
    marketing = BrandSpec("brand:acme", (TWILIO_NUMBER, RC_NUMBER), consent_default=None)
    gateway = await brand_gateway(
        make_gateway,
        marketing,
        consent_default=DefaultConsent.REQUIRE_OPT_IN,
        consent_defaults={RC_NUMBER: DefaultConsent.ALLOW},
    )
    assert (await rc_send(gateway, RC_NUMBER)).status == 200
    assert (await gateway.twilio_send(CUSTOMER, from_=TWILIO_NUMBER)).status == 400


# --- suppression lists ---------------------------------------------------------------------------


async def import_from_outside(gateway: Gateway, members: list[str], kind: SuppressionKind) -> None:
    """Publish a list the way ``stopgate suppressions import`` does: another process's store."""
    store = SQLiteStore(gateway.app[SETTINGS].store)
    await store.open()
    try:
        generation = await store.stage_suppressions("dnc-extract")
        await store.add_suppressions("dnc-extract", generation, members)
        await store.publish_suppressions("dnc-extract", generation, kind, 0, "registry")
    finally:
        await store.close()
    await asyncio.sleep(FEED_WAIT)


async def test_a_suppressed_number_is_refused_then_released_by_a_refresh(
    make_gateway: MakeGateway,
) -> None:
    gateway = await brand_gateway(make_gateway)
    assert (await gateway.twilio_send(CUSTOMER)).status == 201  # cached as allowed
    await import_from_outside(gateway, [CUSTOMER], SuppressionKind.INTERNAL)
    counted = await blocked_recipients(gateway)
    twilio = await gateway.twilio_send(CUSTOMER)
    assert (twilio.status, (await twilio.json())["code"]) == (400, 21610)
    assert decision(twilio) == "blocked; reason=suppressed"
    ringcentral = await rc_send(gateway, RC_NUMBER)
    assert (ringcentral.status, (await ringcentral.json())["errorCode"]) == (400, "SMS-RC-413")
    # Internal lists hold against the customer's own START.
    await post_twilio(gateway, twilio_form("START", to=TWILIO_NUMBER))
    assert (await gateway.twilio_send(CUSTOMER)).status == 400
    [entry, *_] = await gateway.app[STORE].blocked_sends(before_id=None, limit=1)
    assert entry[1].reason == "suppressed"
    assert increase(counted, await blocked_recipients(gateway)) == {
        ("twilio", "suppressed"): 2,
        ("ringcentral", "suppressed"): 1,
    }
    await import_from_outside(gateway, ["+16505550112"], SuppressionKind.INTERNAL)
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    assert (await gateway.twilio_send("+16505550112", from_=ELSEWHERE)).status == 400


async def test_a_customer_opt_in_overrides_a_dnc_extract(make_gateway: MakeGateway) -> None:
    gateway = await brand_gateway(make_gateway)
    await import_from_outside(gateway, [CUSTOMER], SuppressionKind.DNC)
    assert (await gateway.twilio_send(CUSTOMER)).status == 400
    await post_twilio(gateway, twilio_form("START", to=TWILIO_NUMBER))
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    assert (await rc_send(gateway, RC_NUMBER)).status == 200  # the START reopened the brand
    assert (await gateway.twilio_send(CUSTOMER, from_=ELSEWHERE)).status == 400
