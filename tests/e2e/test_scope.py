"""Brands, opt-in mode and suppression lists with the official SDKs against real processes:
``stopgate serve`` (configured from a TOML file), ``stopgate carrier-sim`` delivering signed
inbound webhooks, and ``stopgate suppressions import`` run as an operator would."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ringcentral import SDK
from ringcentral.http.api_exception import ApiException
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.e2e.conftest import (
    BUSINESS,
    HTTP_TIMEOUT,
    OTHER_BUSINESS,
    REPO,
    SIM,
    Stack,
    clean_environment,
    sqlite_url,
    stopgate_command,
)
from tests.e2e.test_inbound import inbound_env
from tests.support.processes import ServiceProcess
from tests.support.sdks import close_twilio

pytestmark = pytest.mark.e2e

TWILIO_NUMBER = BUSINESS  # the brand's Twilio number
RC_NUMBER = OTHER_BUSINESS  # the brand's RingCentral number
MARKETING = "+16505550188"  # an opt-in-mode number outside the brand
RC_SMS = "/restapi/v1.0/account/~/extension/~/sms"
CONFIG = f"""
[brands.acme]
numbers = ["{TWILIO_NUMBER}", "{RC_NUMBER}"]

[consent_defaults]
"{MARKETING}" = "require-opt-in"
"""
WITHIN = 5.0
"""How long a change made by another process may take to show (generous: a loaded machine)."""


@pytest.fixture
def scoped(
    stack: Stack, tmp_path: Path, start_gateway: Callable[..., ServiceProcess]
) -> Iterator[tuple[ServiceProcess, Path]]:
    config = tmp_path / "stopgate.toml"
    config.write_text(CONFIG)
    store = tmp_path / "scope.db"
    env = inbound_env(SIM, tmp_path / "spool.jsonl")
    yield start_gateway("scoped-gateway", store, STOPGATE_CONFIG=str(config), **env), store


@pytest.fixture
def twilio(scoped: tuple[ServiceProcess, Path]) -> Iterator[Client]:
    client = Client(SIM.twilio_account_sid, SIM.twilio_auth_token, environment={})
    client.api.base_url = scoped[0].url
    yield client
    close_twilio(client)


def inbound(
    stack: Stack, gateway: ServiceProcess, provider: str, to: str, text: str, who: str
) -> None:
    spec = {"provider": provider, "from": who, "to": to, "text": text, "gateway": gateway.url}
    reply = requests.post(f"{stack.sim_url}/sim/inbound", json=spec, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == 200, reply.text


def rc_send(gateway: ServiceProcess, sender: str, to: str) -> Any:
    platform = SDK(SIM.rc_client_id, SIM.rc_client_secret, gateway.url).platform()
    platform.login(jwt=SIM.rc_jwt)
    body = {"from": {"phoneNumber": sender}, "to": [{"phoneNumber": to}], "text": "news"}
    return platform.post(RC_SMS, body)


def twilio_refusal(twilio: Client, to: str, sender: str) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as refused:
        twilio.messages.create(to=to, from_=sender, body="news")
    return refused.value


def import_list(store: Path, name: str, numbers: list[str], tmp_path: Path) -> str:
    listing = tmp_path / f"{name}-{len(numbers)}.csv"
    listing.write_text("Phone\n" + "".join(f"{n}\n" for n in numbers))
    done = subprocess.run(
        stopgate_command(
            "suppressions", "import", name, str(listing), "--store", sqlite_url(store)
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(),
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_twilio_stop_blocks_the_brands_ringcentral_number(
    stack: Stack, scoped: tuple[ServiceProcess, Path], customer: str
) -> None:
    gateway, _ = scoped
    assert rc_send(gateway, RC_NUMBER, customer).response().status_code == 200
    inbound(stack, gateway, "twilio", TWILIO_NUMBER, "STOP", customer)
    with pytest.raises(ApiException) as refused:
        rc_send(gateway, RC_NUMBER, customer)
    response = refused.value.api_response().response()
    assert (response.status_code, response.json()["errorCode"]) == (400, "SMS-RC-413")
    assert response.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out-brand"
    inbound(stack, gateway, "ringcentral", RC_NUMBER, "START", customer)
    assert rc_send(gateway, RC_NUMBER, customer).response().status_code == 200


def test_an_opt_in_number_refuses_until_start(
    stack: Stack, scoped: tuple[ServiceProcess, Path], twilio: Client, customer: str
) -> None:
    gateway, _ = scoped
    refusal = twilio_refusal(twilio, customer, MARKETING)
    assert (refusal.status, refusal.code) == (400, 21610)
    assert twilio.messages.create(to=customer, from_=TWILIO_NUMBER, body="receipt").sid
    inbound(stack, gateway, "twilio", MARKETING, "START", customer)
    assert twilio.messages.create(to=customer, from_=MARKETING, body="news").sid
    sent = [(m["from"], m["text"]) for m in stack.delivered(customer) if m["text"] != "receipt"]
    # The START's confirmation, then the one marketing text that passed.
    assert [text for sender, text in sent if sender == MARKETING][-1:] == ["news"]
    assert [text for _, text in sent].count("news") == 1


def test_a_suppressed_number_is_refused_until_a_refresh_drops_it(
    scoped: tuple[ServiceProcess, Path],
    twilio: Client,
    new_customer: Callable[[], str],
    tmp_path: Path,
) -> None:
    gateway, store = scoped
    listed, other = new_customer(), new_customer()
    assert twilio.messages.create(to=listed, from_=TWILIO_NUMBER, body="hi").sid  # cached
    summary = import_list(store, "internal", [listed], tmp_path)
    assert "1 numbers, 1 added, 0 released" in summary

    def refused() -> bool:
        reply = requests.post(
            f"{gateway.url}/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json",
            data={"To": listed, "From": TWILIO_NUMBER, "Body": "hi"},
            auth=(SIM.twilio_account_sid, SIM.twilio_auth_token),
            timeout=HTTP_TIMEOUT,
        )
        return reply.headers.get("X-Stopgate-Decision") == "blocked; reason=suppressed"

    assert eventually(refused)
    refusal = twilio_refusal(twilio, listed, RC_NUMBER)
    assert (refusal.status, refusal.code) == (400, 21610)
    with pytest.raises(ApiException):
        rc_send(gateway, RC_NUMBER, listed)
    summary = import_list(store, "internal", [other], tmp_path)
    assert "1 numbers, 1 added, 1 released" in summary
    assert eventually(lambda: not refused())
    assert twilio.messages.create(to=listed, from_=RC_NUMBER, body="back").sid
