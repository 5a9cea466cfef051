"""Inbound webhooks through a real gateway app, signed as the carriers sign them (the Twilio
SDK's own validator computes the signatures, so the gateway's check is proven against it)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from gateway.keys import INDEX, STORE
from gateway.outbox import run_once
from tests.conftest import BUSINESS, CUSTOMER, OTHER_BUSINESS, SIM, Gateway, MakeGateway

VERIFICATION = "rc-verification-token"


def twilio_form(
    text: str, *, to: str = BUSINESS, sender: str = CUSTOMER, **extra: str
) -> dict[str, str]:
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": SIM.twilio_account_sid,
        "From": sender,
        "To": to,
        "Body": text,
        "NumMedia": "0",
        **extra,
    }


async def post_twilio(
    gateway: Gateway, form: dict[str, str], *, signature: str | None = None, url: str | None = None
) -> Any:
    target = url or str(gateway.client.make_url("/webhooks/twilio"))
    signed = signature or RequestValidator(SIM.twilio_auth_token).compute_signature(target, form)
    return await gateway.client.post(
        "/webhooks/twilio",
        data=urlencode(form),
        headers={
            "X-Twilio-Signature": signed,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def rc_event(
    text: str, *, to: tuple[str, ...] = (BUSINESS,), sender: str = CUSTOMER
) -> dict[str, Any]:
    return {
        "uuid": uuid.uuid4().hex,
        "event": "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS",
        "timestamp": "2026-11-22T20:00:00.000Z",
        "subscriptionId": "sub-1",
        "body": {
            "id": str(uuid.uuid4().int % 10**12),
            "from": {"phoneNumber": sender},
            "to": [{"phoneNumber": number} for number in to],
            "type": "SMS",
            "direction": "Inbound",
            "subject": text,
        },
    }


async def post_rc(gateway: Gateway, event: dict[str, Any], token: str = VERIFICATION) -> Any:
    return await gateway.client.post(
        "/webhooks/ringcentral", json=event, headers={"Verification-Token": token}
    )


async def history(gateway: Gateway, to: str = CUSTOMER) -> list[Any]:
    return await gateway.app[STORE].history(to_key=to, from_key=None, after_id=None, limit=100)


async def confirmations(gateway: Gateway, within: float = 5.0) -> list[dict[str, Any]]:
    """What reached the customer, once the gateway's own outbox worker has delivered it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        delivered = await gateway.delivered(CUSTOMER)
        if delivered or loop.time() > deadline:
            # A little longer, so a second (wrong) delivery would show too.
            await asyncio.sleep(0.3)
            return await gateway.delivered(CUSTOMER)
        await asyncio.sleep(0.05)


@pytest.fixture
async def rc_gateway(make_gateway: MakeGateway) -> Gateway:
    from gateway.config import Secret

    return await make_gateway(
        ringcentral_verification_token=Secret(VERIFICATION),
        ringcentral_client_id=SIM.rc_client_id,
        ringcentral_client_secret=Secret(SIM.rc_client_secret),
        ringcentral_jwt=Secret(SIM.rc_jwt),
        brand_name="Acme",
    )


async def test_twilio_stop_blocks_the_pair_and_confirms_in_twiml(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("Stop"))
    assert response.status == 200
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
    twiml = await response.text()
    assert "<Message>" in twiml and "START" in twiml
    assert (await gateway.twilio_send(CUSTOMER)).status == 400
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 201
    [entry] = await history(gateway)
    assert (entry.new_status.value, entry.source.value) == ("OptOut", "Recipient")


async def test_start_reopens_that_pair_only(gateway: Gateway) -> None:
    await post_twilio(gateway, twilio_form("STOP ALL"))
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 400
    response = await post_twilio(gateway, twilio_form("start"))
    assert response.headers["X-Stopgate-Keyword"] == "opt_in"
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 400


async def test_help_is_answered_even_when_opted_out_and_changes_nothing(gateway: Gateway) -> None:
    await post_twilio(gateway, twilio_form("STOP"))
    response = await post_twilio(gateway, twilio_form("help"))
    assert response.headers["X-Stopgate-Keyword"] == "help"
    assert "Msg &amp; data rates may apply" in await response.text()
    assert len(await history(gateway)) == 1


async def test_a_replayed_webhook_has_no_second_effect(gateway: Gateway) -> None:
    form = twilio_form("STOP")
    first = await post_twilio(gateway, form)
    again = await post_twilio(gateway, form)
    assert (first.status, again.status) == (200, 200)
    assert "<Message>" in await first.text()
    assert "<Message>" not in await again.text()
    assert len(await history(gateway)) == 1


@pytest.mark.parametrize("signature", ["", "AAAA", "bm90IHRoZSBzaWduYXR1cmU="])
async def test_a_forged_twilio_webhook_is_403_and_changes_nothing(
    gateway: Gateway, signature: str
) -> None:
    form = twilio_form("STOP")
    response = await gateway.client.post(
        "/webhooks/twilio",
        data=urlencode(form),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status == 403
    assert (await response.json())["error"]["reason"] == "bad-signature"
    assert await history(gateway) == []


async def test_a_signature_for_another_body_is_refused(gateway: Gateway) -> None:
    form = twilio_form("hello")
    url = str(gateway.client.make_url("/webhooks/twilio"))
    signature = RequestValidator(SIM.twilio_auth_token).compute_signature(url, form)
    tampered = {**form, "Body": "START"}
    response = await post_twilio(gateway, tampered, signature=signature)
    assert response.status == 403


async def test_public_url_is_what_the_signature_covers(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(public_url="https://stopgate.example.com")
    form = twilio_form("STOP")
    public = "https://stopgate.example.com/webhooks/twilio"
    assert (await post_twilio(gateway, form, url=public)).status == 200
    wrong = await post_twilio(gateway, twilio_form("STOP"))  # signed for the local URL
    assert wrong.status == 403


async def test_a_json_body_signed_through_body_sha256(gateway: Gateway) -> None:
    import hashlib

    document = twilio_form("STOP")
    body = json.dumps(document).encode()
    digest = hashlib.sha256(body).hexdigest()
    path = f"/webhooks/twilio?bodySHA256={digest}"
    url = str(gateway.client.make_url(path))
    signature = RequestValidator(SIM.twilio_auth_token).compute_signature(url, {})
    response = await gateway.client.post(
        path,
        data=body,
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    assert len(await history(gateway)) == 1


async def test_twilio_webhook_without_auth_token_is_503(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(twilio_auth_token=None)
    response = await gateway.client.post("/webhooks/twilio", data={"Body": "STOP"})
    assert response.status == 503
    assert (await response.json())["error"]["reason"] == "twilio-webhook-disabled"


async def test_carrier_handled_keyword_is_recorded_without_a_second_reply(
    gateway: Gateway,
) -> None:
    response = await post_twilio(gateway, twilio_form("STOP", OptOutType="STOP"))
    assert response.status == 200
    assert "<Message>" not in await response.text()
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


async def test_replies_by_the_carrier_setting_sends_none(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(replies="carrier")
    response = await post_twilio(gateway, twilio_form("STOP"))
    assert "<Message>" not in await response.text()
    assert len(await history(gateway)) == 1


async def test_a_stop_covers_the_messaging_service_it_came_through(gateway: Gateway) -> None:
    service = "MG" + "cd" * 16
    await post_twilio(gateway, twilio_form("STOP", MessagingServiceSid=service))
    through_service = await gateway.twilio_send(CUSTOMER, from_=None, MessagingServiceSid=service)
    assert through_service.status == 400
    assert await gateway.app[STORE].service_of(BUSINESS) == service


async def test_spanish_keyword_gets_a_spanish_confirmation(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("Cancelar"))
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
    assert "baja" in await response.text()


async def test_plain_messages_change_nothing(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("I'll stop by tomorrow"))
    assert response.headers["X-Stopgate-Keyword"] == "none"
    assert await history(gateway) == []
    assert (await gateway.twilio_send(CUSTOMER)).status == 201


async def test_ringcentral_handshake_echoes_the_validation_token(rc_gateway: Gateway) -> None:
    response = await rc_gateway.client.post(
        "/webhooks/ringcentral", headers={"Validation-Token": "abc123"}
    )
    assert response.status == 200
    assert response.headers["Validation-Token"] == "abc123"
    assert len(await response.read()) == 0


@pytest.mark.parametrize("header", ["Verification-Token", "Validation-Token"])
async def test_ringcentral_stop_is_recorded_and_confirmed_past_its_own_block(
    rc_gateway: Gateway, header: str
) -> None:
    event = rc_event("STOP")
    response = await rc_gateway.client.post(
        "/webhooks/ringcentral", json=event, headers={header: VERIFICATION}
    )
    assert response.status == 200
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
    assert (await rc_gateway.twilio_send(CUSTOMER)).status == 400
    replies = await confirmations(rc_gateway)
    assert len(replies) == 1 and replies[0]["text"].startswith("Acme:")
    await run_once(rc_gateway.app)
    assert len(await rc_gateway.delivered(CUSTOMER)) == 1


async def test_ringcentral_wrong_token_is_403(rc_gateway: Gateway) -> None:
    response = await post_rc(rc_gateway, rc_event("STOP"), token="nope")
    assert response.status == 403
    assert await history(rc_gateway) == []


async def test_ringcentral_event_to_several_numbers_blocks_each(rc_gateway: Gateway) -> None:
    await post_rc(rc_gateway, rc_event("stop", to=(BUSINESS, OTHER_BUSINESS)))
    for sender in (BUSINESS, OTHER_BUSINESS):
        assert (await rc_gateway.twilio_send(CUSTOMER, from_=sender)).status == 400


async def test_ringcentral_replayed_event_confirms_once(rc_gateway: Gateway) -> None:
    event = rc_event("STOP")
    for _ in range(3):
        assert (await post_rc(rc_gateway, event)).status == 200
    assert len(await confirmations(rc_gateway)) == 1
    await run_once(rc_gateway.app)
    assert len(await rc_gateway.delivered(CUSTOMER)) == 1
    assert len(await history(rc_gateway)) == 1


async def test_ringcentral_without_verification_token_is_503(gateway: Gateway) -> None:
    response = await post_rc(gateway, rc_event("STOP"))
    assert response.status == 503


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"body": 1}',
        b'{"body": {"id": 1, "direction": "Inbound", "from": {}, "to": []}}',
    ],
)
async def test_malformed_ringcentral_events_are_4xx(rc_gateway: Gateway, body: bytes) -> None:
    response = await rc_gateway.client.post(
        "/webhooks/ringcentral",
        data=body,
        headers={"Verification-Token": VERIFICATION, "Content-Type": "application/json"},
    )
    assert 400 <= response.status < 500


def _lock_store(path: Path) -> sqlite3.Connection:
    """Another process holding the write lock: the store can be read but not written."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


async def test_store_down_stop_is_spooled_acknowledged_and_enforced(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gateway = await make_gateway(store=f"sqlite:///{tmp_path / 'stopgate.db'}?busy_timeout=0.2")
    assert (await gateway.twilio_send(CUSTOMER)).status == 201  # the pair is cached "allowed"
    holder = _lock_store(tmp_path / "stopgate.db")
    try:
        response = await post_twilio(gateway, twilio_form("STOP"))
        assert response.status == 200
        assert (tmp_path / "spool.jsonl").stat().st_size > 0
        blocked = await gateway.twilio_send(CUSTOMER)
        assert blocked.status == 400  # enforced from the spool, before the store has it
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await run_once(gateway.app)
    assert (tmp_path / "spool.jsonl").stat().st_size == 0
    assert len(await history(gateway)) == 1
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


class AppWebhook:
    """The app behind Stopgate: records what it is sent, answers TwiML, or is down."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(
            status=self.status,
            text='<?xml version="1.0"?><Response><Message>from the app</Message></Response>',
            content_type="text/xml",
        )


@pytest.fixture
async def app_webhook(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[AppWebhook, str]:
    hook = AppWebhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app)
    return hook, str(server.make_url("/hook"))


async def test_twilio_events_are_forwarded_re_signed_and_the_app_answer_relayed(
    make_gateway: MakeGateway, app_webhook: tuple[AppWebhook, str]
) -> None:
    hook, url = app_webhook
    gateway = await make_gateway(twilio_app_webhook=url)
    response = await post_twilio(gateway, twilio_form("what time do you open?"))
    assert "from the app" in await response.text()
    [(headers, body)] = hook.received
    assert headers["X-Stopgate-Keyword"] == "none"
    params = dict(__import__("urllib.parse").parse.parse_qsl(body.decode()))
    assert RequestValidator(SIM.twilio_auth_token).validate(
        url, params, headers["X-Twilio-Signature"]
    )
    await run_once(gateway.app)
    assert len(hook.received) == 1  # delivered inline: the outbox does not send it again


async def test_keywords_are_forwarded_too_and_a_down_app_gets_them_later(
    make_gateway: MakeGateway, app_webhook: tuple[AppWebhook, str]
) -> None:
    hook, url = app_webhook
    hook.status = 503
    gateway = await make_gateway(twilio_app_webhook=url, app_reply_deadline=0.2)
    response = await post_twilio(gateway, twilio_form("STOP"))
    assert response.status == 200 and "<Message>" in await response.text()
    hook.status = 200
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(h.get("X-Stopgate-Keyword") == "opt_out" for h, _ in hook.received):
        assert loop.time() < deadline, "the outbox never delivered the forward"
        await asyncio.sleep(0.05)
    store = gateway.app[INDEX].store
    # Done is recorded after the app's answer arrives: wait for it, not just for the delivery.
    while await store.due_outbox(now_us=2**62, limit=10) != []:
        assert loop.time() < deadline, "the delivered forward was never marked done"
        await asyncio.sleep(0.05)


async def test_a_slow_app_gets_an_empty_answer_in_time(
    make_gateway: MakeGateway, app_webhook: tuple[AppWebhook, str]
) -> None:
    hook, url = app_webhook
    hook.delay = 1.0
    gateway = await make_gateway(twilio_app_webhook=url, app_reply_deadline=0.2)
    response = await post_twilio(gateway, twilio_form("hello?"))
    assert response.status == 200
    assert "<Message>" not in await response.text()


async def test_keyword_lists_are_configurable_per_business_number(
    make_gateway: MakeGateway,
) -> None:
    # Keywords only: the plain-language classifier would read "Enough" as a revocation anywhere.
    gateway = await make_gateway(
        keywords={BUSINESS: {"opt_out": ["ENOUGH"]}, "twilio": {"remove": ["YES"]}},
        plain_language=False,
    )
    other = await post_twilio(gateway, twilio_form("Enough", to=OTHER_BUSINESS))
    assert other.headers["X-Stopgate-Keyword"] == "none"
    mine = await post_twilio(gateway, twilio_form("Enough!"))
    assert mine.headers["X-Stopgate-Keyword"] == "opt_out"
    yes = await post_twilio(gateway, twilio_form("YES"))
    assert yes.headers["X-Stopgate-Keyword"] == "none"


async def test_first_word_mode_takes_a_keyword_that_starts_the_message(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway(keyword_mode="first-word")
    response = await post_twilio(gateway, twilio_form("STOP please, no more"))
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
