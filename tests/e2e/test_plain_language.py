"""Plain-language revocation end to end: the carrier simulator delivers real, signed webhooks
(Twilio signature, RingCentral verification token) to a real ``stopgate serve`` process with the
default settings (plain-language revocation on), and the app's sends go through that gateway.

Observed from outside only: the webhook answers, what the simulated carriers delivered to the
customer (TwiML replies, the outbox's RingCentral sends), refusals in each carrier's format, the
consent API, and the console's ``GET /admin/reviews``. Customers come from the fictional
503-555-01xx range, which no other e2e module uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import ADMIN_TOKEN, BUSINESS, HTTP_TIMEOUT, Stack
from tests.e2e.test_inbound import KEYWORD, PROVIDERS, STORE_QUERY, Gateway, fictional, running

pytestmark = pytest.mark.e2e

REVOCATION = "X-Stopgate-Revocation"
_customers = fictional("503")


@pytest.fixture
def fresh() -> Callable[[], str]:
    return lambda: next(_customers)


@pytest.fixture(scope="module")
def gw(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work: Path = tmp_path_factory.mktemp("e2e-plain-language")
    store, spool = work / "plain.db", work / "spool.jsonl"
    with running("gateway-plain", stack.sim_url, store, spool, work, STORE_QUERY) as gateway:
        yield gateway


def reviews(gw: Gateway, customer: str) -> list[dict[str, object]]:
    reply = requests.get(
        f"{gw.url}/admin/reviews",
        params={"status": "all", "per_page": "200"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=HTTP_TIMEOUT,
    )
    assert reply.status_code == 200, reply.text
    return [r for r in reply.json()["reviews"] if r["from"] == customer]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_please_stop_texting_me_blocks_later_sends(
    gw: Gateway, provider: str, fresh: Callable[[], str]
) -> None:
    customer = fresh()
    gw.assert_allowed(provider, customer)

    answer = gw.inbound(provider, customer, BUSINESS, "please stop texting me")

    assert answer["status"] == 200, answer
    assert (answer["headers"][KEYWORD], answer["headers"][REVOCATION]) == ("opt_out", "revoke")
    gw.assert_refused(provider, customer)  # 21610 / SMS-RC-413
    [record] = gw.consents(customer)
    assert (record["optStatus"], record["source"]) == ("OptOut", "Recipient")
    assert record["note"].startswith("plain-language: en.stop-contact")
    [confirmation] = gw.wait_confirmations(customer)
    assert "unsubscribed" in confirmation["text"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ill_stop_by_later_blocks_nothing(
    gw: Gateway, provider: str, fresh: Callable[[], str]
) -> None:
    customer = fresh()

    answer = gw.inbound(provider, customer, BUSINESS, "I'll stop by later")

    assert answer["status"] == 200, answer
    assert (answer["headers"][KEYWORD], answer["headers"][REVOCATION]) == ("none", "none")
    gw.assert_allowed(provider, customer)
    assert gw.consents(customer) == []
    assert gw.confirmations(customer) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unclear_message_is_clarified_once_and_listed_for_review(
    gw: Gateway, provider: str, fresh: Callable[[], str]
) -> None:
    customer = fresh()

    first = gw.inbound(provider, customer, BUSINESS, "how do I unsubscribe?")
    second = gw.inbound(provider, customer, BUSINESS, "not interested")

    assert first["headers"][REVOCATION] == second["headers"][REVOCATION] == "unclear"
    [clarification] = gw.wait_confirmations(customer)
    assert "Do you want to stop receiving messages" in clarification["text"]
    gw.assert_allowed(provider, customer)
    listed = reviews(gw, customer)
    assert [(r["text"], r["clarified"]) for r in listed] == [
        ("not interested", False),
        ("how do I unsubscribe?", True),
    ]
    assert gw.confirmations(customer) == [clarification], "one clarifying text per pair"
