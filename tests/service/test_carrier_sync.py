"""Stopgate learns the opt-outs the carrier knows: a send refused upstream with 21610, and
RingCentral's SendingFailed / SMS-*-413 statuses and consent events."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.config import Secret
from gateway.keys import STORE
from tests.conftest import BUSINESS, CUSTOMER, OTHER_BUSINESS, Gateway, MakeGateway

VERIFICATION = "rc-verification-token"


async def test_a_21610_from_the_carrier_is_recorded_and_the_next_send_stops_here(
    gateway: Gateway,
) -> None:
    async with gateway.client.session.post(
        gateway.sim.make_url("/sim/carrier-opt-outs"), json={"number": CUSTOMER}
    ) as response:
        assert response.status == 200
    first = await gateway.twilio_send(CUSTOMER)
    assert first.status == 400
    assert first.headers["X-Stopgate-Decision"] == "allowed"  # the carrier refused it
    second = await gateway.twilio_send(CUSTOMER)
    assert second.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out"
    [entry] = await gateway.app[STORE].history(
        to_key=CUSTOMER, from_key=None, after_id=None, limit=10
    )
    assert (entry.source.value, entry.new_status.value if entry.new_status else None) == (
        "Upstream",
        "OptOut",
    )


@pytest.fixture
async def rc_gateway(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway(ringcentral_verification_token=Secret(VERIFICATION))


async def notify(gateway: Gateway, event: str, body: dict[str, Any]) -> Any:
    return await gateway.client.post(
        "/webhooks/ringcentral",
        json={
            "uuid": uuid.uuid4().hex,
            "event": event,
            "timestamp": "2026-11-22T00:00:00Z",
            "body": body,
        },
        headers={"Verification-Token": VERIFICATION},
    )


async def test_a_sending_failed_413_status_records_the_carrier_block(rc_gateway: Gateway) -> None:
    response = await notify(
        rc_gateway,
        "/restapi/v1.0/account/~/extension/~/message-store",
        {
            "id": "123",
            "direction": "Outbound",
            "type": "SMS",
            "messageStatus": "SendingFailed",
            "deliveryErrorCode": "SMS-CAR-413",
            "from": {"phoneNumber": BUSINESS},
            "to": [{"phoneNumber": CUSTOMER}],
        },
    )
    assert response.status == 200
    assert (await rc_gateway.twilio_send(CUSTOMER)).status == 400
    assert (await rc_gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 201


async def test_other_failures_are_not_opt_outs(rc_gateway: Gateway) -> None:
    await notify(
        rc_gateway,
        "/restapi/v1.0/account/~/extension/~/message-store",
        {
            "id": "124",
            "direction": "Outbound",
            "messageStatus": "SendingFailed",
            "deliveryErrorCode": "SMS-CAR-199",
            "from": {"phoneNumber": BUSINESS},
            "to": [{"phoneNumber": CUSTOMER}],
        },
    )
    assert (await rc_gateway.twilio_send(CUSTOMER)).status == 201


async def test_ringcentral_consent_events_are_recorded_as_carrier_changes(
    rc_gateway: Gateway,
) -> None:
    await notify(
        rc_gateway,
        "/restapi/v2/accounts/123/sms/consents",
        {
            "records": [
                {"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut", "source": "Recipient"}
            ]
        },
    )
    assert (await rc_gateway.twilio_send(CUSTOMER)).status == 400
    [entry] = await rc_gateway.app[STORE].history(
        to_key=CUSTOMER, from_key=None, after_id=None, limit=10
    )
    assert entry.source.value == "Carrier" and "Recipient" in (entry.note or "")
