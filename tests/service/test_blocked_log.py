"""Group commit of the blocked-send log: concurrent refusals share commits, none is lost."""

from __future__ import annotations

import asyncio

from gateway.keys import STORE
from tests.conftest import BUSINESS, Gateway


async def test_a_burst_of_refusals_is_logged_in_full(gateway: Gateway) -> None:
    customers = [f"+1650666{n:04d}" for n in range(40)]
    await gateway.set_consent(
        *({"from": BUSINESS, "to": c, "optStatus": "OptOut"} for c in customers)
    )
    replies = await asyncio.gather(*(gateway.twilio_send(c) for c in customers))
    assert {r.status for r in replies} == {400}
    logged = await gateway.app[STORE].blocked_sends(before_id=None, limit=100)
    assert sorted(e.to_key for _, e in logged) == sorted(customers)
