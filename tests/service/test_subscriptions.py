"""Stopgate's RingCentral webhook subscription: created through the handshake, renewed, and
re-created when RingCentral has forgotten it (simulator and gateway on real ports)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gateway import subscriptions
from gateway.config import Secret, Settings
from gateway.keys import INDEX, RC_LOGIN, SETTINGS
from tests.conftest import SIM, Gateway, MakeGateway


async def make(make_gateway: MakeGateway, expires_in: int = 604_800) -> tuple[Gateway, Settings]:
    gateway = await make_gateway(
        ringcentral_verification_token=Secret(SIM.rc_verification_token),
        ringcentral_client_id=SIM.rc_client_id,
        ringcentral_client_secret=Secret(SIM.rc_client_secret),
        ringcentral_jwt=Secret(SIM.rc_jwt),
        ringcentral_webhook_expires_in=expires_in,
    )
    # The public URL is the test server's own address, known only once it listens.
    settings = dataclasses.replace(
        gateway.app[SETTINGS], public_url=str(gateway.client.make_url("")).rstrip("/")
    )
    return gateway, settings


async def sim_subscriptions(gateway: Gateway) -> list[dict[str, Any]]:
    token = await gateway.rc_token()
    async with gateway.client.session.get(
        gateway.sim.make_url("/restapi/v1.0/subscription"),
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        return list((await response.json())["records"])


async def test_subscribe_goes_through_the_handshake_and_is_stored(
    make_gateway: MakeGateway,
) -> None:
    gateway, settings = await make(make_gateway)
    store = gateway.app[INDEX].store
    created = await subscriptions.create(gateway.app[RC_LOGIN], settings, store)
    assert created.address == settings.public_url + "/webhooks/ringcentral"
    [record] = await sim_subscriptions(gateway)
    assert record["id"] == created.id and record["status"] == "Active"
    stored = json.loads(await store.get_value(subscriptions.STORED_AS) or "{}")
    assert stored["id"] == created.id


async def test_a_due_subscription_is_renewed_and_a_lost_one_recreated(
    make_gateway: MakeGateway,
) -> None:
    gateway, settings = await make(make_gateway, expires_in=60)
    store = gateway.app[INDEX].store
    created = await subscriptions.create(gateway.app[RC_LOGIN], settings, store)
    # A 60 s lifetime is due for renewal at once.
    renewed = await subscriptions.renew_if_due(gateway.app[RC_LOGIN], settings, store)
    assert renewed is not None and renewed.id == created.id
    assert renewed.expires_at >= created.expires_at
    token = await gateway.rc_token()
    async with gateway.client.session.delete(
        gateway.sim.make_url(f"/restapi/v1.0/subscription/{created.id}"),
        headers={"Authorization": f"Bearer {token}"},
    ):
        pass
    again = await subscriptions.renew_if_due(gateway.app[RC_LOGIN], settings, store)
    assert again is not None and again.id != created.id
    assert [r["id"] for r in await sim_subscriptions(gateway)] == [again.id]


async def test_nothing_to_renew_without_a_subscription(make_gateway: MakeGateway) -> None:
    gateway, settings = await make(make_gateway)
    store = gateway.app[INDEX].store
    assert await subscriptions.renew_if_due(gateway.app[RC_LOGIN], settings, store) is None
