"""Quiet hours and frequency caps as apps see them: the official, unmodified RingCentral and
Twilio SDKs (run in a thread, as an app's blocking code would) against gateways on real ports
whose clock the test sets, in front of the carrier simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from ringcentral import SDK
from ringcentral.http.api_exception import ApiException
from ringcentral.platform.platform import Platform
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from gateway.app import create_app
from gateway.clock import Clock
from gateway.config import Settings
from policy.categories import Category
from policy.frequency_caps import FrequencyCaps
from policy.quiet_hours import QuietHours, QuietHoursRule
from tests.conftest import BUSINESS, SIM
from tests.contract.test_store import postgres_server  # noqa: F401
from tests.support import postgres
from tests.support.sdks import close_twilio

RC_SMS = "/restapi/v1.0/account/~/extension/~/sms"
NEW_YORK = "+12125550123"
MIAMI = "+13055550123"
AT_22_NEW_YORK = dt.datetime(2026, 7, 2, 2, 0, tzinfo=dt.UTC).timestamp()
AT_NOON_NEW_YORK = dt.datetime(2026, 7, 1, 16, 0, tzinfo=dt.UTC).timestamp()

Serve = Callable[..., Awaitable[str]]


@pytest.fixture
def serve(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    settings_for: Callable[..., Settings],
) -> Serve:
    """Start a gateway at a fixed instant; returns its base URL."""

    async def start(now: float, **overrides: Any) -> str:
        app = create_app(settings_for(**overrides), clock=Clock(lambda: now))
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return start


@pytest.fixture
def twilio_for() -> Iterator[Callable[[str], Client]]:
    clients: list[Client] = []

    def make(base_url: str) -> Client:
        client = Client(SIM.twilio_account_sid, SIM.twilio_auth_token, environment={})
        client.api.base_url = base_url
        clients.append(client)
        return client

    yield make
    for client in clients:
        close_twilio(client)


async def rc_platform(base_url: str) -> Platform:
    platform = SDK(SIM.rc_client_id, SIM.rc_client_secret, base_url).platform()
    await asyncio.to_thread(platform.login, jwt=SIM.rc_jwt)
    return platform


def sms(to: str) -> dict[str, Any]:
    return {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": to}], "text": "Sale!"}


async def twilio_send(client: Client, to: str) -> Any:
    return await asyncio.to_thread(client.messages.create, to=to, from_=BUSINESS, body="Sale!")


async def rc_send(platform: Platform, to: str) -> Any:
    return await asyncio.to_thread(platform.post, RC_SMS, sms(to))


async def test_twilio_sdk_marketing_at_22_raises_30007(
    serve: Serve, twilio_for: Callable[[str], Client]
) -> None:
    quiet = QuietHours(QuietHoursRule(enabled=True))
    url = await serve(AT_22_NEW_YORK, quiet_hours=quiet)
    with pytest.raises(TwilioRestException) as excinfo:
        await twilio_send(twilio_for(url), NEW_YORK)
    assert (excinfo.value.status, excinfo.value.code) == (400, 30007)
    assert "sending hours" in excinfo.value.msg
    # The same number configured as transactional sends at any hour.
    open_url = await serve(
        AT_22_NEW_YORK, quiet_hours=quiet, category_default=Category.TRANSACTIONAL
    )
    message = await twilio_send(twilio_for(open_url), NEW_YORK)
    assert message.sid.startswith("SM")


async def test_ringcentral_sdk_marketing_at_22_raises_its_error(serve: Serve) -> None:
    url = await serve(AT_22_NEW_YORK, quiet_hours=QuietHours(QuietHoursRule(enabled=True)))
    platform = await rc_platform(url)
    with pytest.raises(ApiException) as excinfo:
        await rc_send(platform, NEW_YORK)
    response = excinfo.value.api_response().response()
    assert response.status_code == 400
    body = response.json()
    assert (body["errorCode"], body["reason"]) == ("SMS-STOPGATE-451", "quiet-hours")
    assert response.headers["X-Stopgate-Decision"] == "blocked; reason=quiet-hours"


async def test_the_fourth_send_to_florida_through_two_gateways_on_postgres_is_capped(
    serve: Serve,
    twilio_for: Callable[[str], Client],
    postgres_server: str,  # noqa: F811
) -> None:
    caps = FrequencyCaps(enabled=True)
    with postgres.schema(postgres_server) as store:
        first = await serve(AT_NOON_NEW_YORK, store=store, frequency_caps=caps)
        second = await serve(AT_NOON_NEW_YORK + 60, store=store, frequency_caps=caps)
        twilio_first, platform_second = twilio_for(first), await rc_platform(second)
        assert (await twilio_send(twilio_first, MIAMI)).sid
        assert (await rc_send(platform_second, MIAMI)).json_dict()["messageStatus"] == "Queued"
        assert (await twilio_send(twilio_first, MIAMI)).sid
        with pytest.raises(ApiException) as excinfo:
            await rc_send(platform_second, MIAMI)
        body = excinfo.value.api_response().response().json()
        assert (body["errorCode"], body["reason"]) == ("SMS-STOPGATE-429", "frequency-cap")
        with pytest.raises(TwilioRestException) as twilio_error:
            await twilio_send(twilio_first, MIAMI)
        assert twilio_error.value.code == 30007
        # A number outside the capped states is not capped.
        for _ in range(4):
            assert (await twilio_send(twilio_first, NEW_YORK)).sid
