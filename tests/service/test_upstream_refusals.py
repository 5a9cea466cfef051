"""What the app is told when the carrier cannot be used: whether the send may have happened.

A connection that never opened means the carrier surely has nothing; a reset or a cut body
after the request went out (and a timeout) means it may have sent the message, and the app must
not be invited to retry blindly. The carrier faults themselves are exercised end to end in
``tests/e2e/test_upstream_faults.py``.
"""

from __future__ import annotations

import pytest

from tests.conftest import CUSTOMER, MakeGateway
from tests.support.servers import free_port


async def test_no_connection_says_the_send_was_not_delivered(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(twilio_upstream=f"http://127.0.0.1:{free_port()}")
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 502
    body = await response.json()
    assert (body["code"], body["reason"]) == (20500, "upstream-unreachable")
    assert body["message"] == "The carrier could not be reached; the send was not delivered"


@pytest.mark.parametrize("mode", ["reset", "half-body"])
async def test_a_broken_connection_says_the_send_may_have_happened(
    make_gateway: MakeGateway, mode: str
) -> None:
    gateway = await make_gateway()
    await gateway.sim_fault(mode=mode, count=1)
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 502
    body = await response.json()
    assert body["reason"] == "upstream-unreachable"
    assert "may or may not have been accepted" in body["message"]
    assert len(await gateway.delivered(CUSTOMER)) == (1 if mode == "half-body" else 0)
