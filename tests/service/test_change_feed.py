"""Two gateways on one store: a STOP taken by one is honoured by the other within 100 ms,
whatever either had cached."""

from __future__ import annotations

import asyncio

from gateway.keys import FEED
from tests.conftest import BUSINESS, MakeGateway
from tests.service.test_inbound import post_twilio, twilio_form


async def test_a_stop_on_one_gateway_blocks_sends_on_the_other_within_100_ms(
    make_gateway: MakeGateway,
) -> None:
    taker = await make_gateway()
    sender = await make_gateway()
    customers = [f"+1650777{n:04d}" for n in range(60)]
    for customer in customers:  # the sender's cache now holds "allowed" for every pair
        assert (await sender.twilio_send(customer)).status == 201
    for customer in customers:
        response = await post_twilio(taker, twilio_form("STOP", sender=customer))
        assert response.status == 200
        # The bound: any send made 100 ms or more after the acknowledgement is refused.
        await asyncio.sleep(0.1)
        assert (await sender.twilio_send(customer)).status == 400
    assert sender.app[FEED].healthy


async def test_a_bulk_write_flushes_the_other_cache(make_gateway: MakeGateway) -> None:
    writer = await make_gateway()
    reader = await make_gateway()
    customers = [f"+1650778{n:04d}" for n in range(300)]
    for customer in customers[:5]:
        assert (await reader.twilio_send(customer)).status == 201
    await writer.set_consent(
        *({"from": BUSINESS, "to": customer, "optStatus": "OptOut"} for customer in customers)
    )
    await asyncio.sleep(0.1)
    for customer in customers[:5]:
        assert (await reader.twilio_send(customer)).status == 400


async def test_readyz_reports_a_followed_feed(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    await asyncio.sleep(0.1)
    body = await (await gateway.client.get("/readyz")).json()
    assert body == {"status": "ready", "store": "ok", "changeFeed": "ok"}
