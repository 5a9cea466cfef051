"""Plain-language revocation through a real gateway app, both dialects (Twilio webhooks signed
with the SDK's RequestValidator, RingCentral webhooks with the verification token; replies go
through the carrier simulator).

``revoke`` blocks the pair exactly as STOP does (later sends refused with 21610 / SMS-RC-413,
confirmation sent, history noted ``plain-language: <rule>``); ``unclear`` answers one clarifying
text per pair and window and lists the message under ``GET /admin/reviews``, from where an admin
opts the pair out or dismisses it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.keys import METRICS
from gateway.outbox import run_once
from tests.conftest import ADMIN_TOKEN, BUSINESS, CUSTOMER, OTHER_BUSINESS, Gateway, MakeGateway
from tests.service.test_inbound import (
    AppWebhook,
    _lock_store,
    confirmations,
    history,
    post_rc,
    post_twilio,
    rc_event,
    twilio_form,
)
from tests.service.test_inbound import app_webhook as app_webhook
from tests.service.test_inbound import rc_gateway as rc_gateway

RC_SEND = "/restapi/v1.0/account/~/extension/~/sms"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def reviews(gateway: Gateway, status: str = "open") -> list[dict[str, Any]]:
    response = await gateway.client.get(f"/admin/reviews?status={status}", headers=ADMIN)
    assert response.status == 200, await response.text()
    return list((await response.json())["reviews"])


def counted(gateway: Gateway, outcome: str, language: str) -> float:
    value = gateway.app[METRICS].registry.get_sample_value(
        "stopgate_inbound_plain_language_total", {"outcome": outcome, "language": language}
    )
    return value or 0.0


async def test_twilio_please_stop_texting_me_blocks_like_stop(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("please stop texting me"))
    assert response.status == 200
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
    assert response.headers["X-Stopgate-Revocation"] == "revoke"
    twiml = await response.text()
    assert "<Message>" in twiml and "START" in twiml, "the STOP confirmation"
    refused = await gateway.twilio_send(CUSTOMER)
    assert refused.status == 400
    assert (await refused.json())["code"] == 21610
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 201
    [entry] = await history(gateway)
    assert (entry.new_status.value, entry.source.value) == ("OptOut", "Recipient")
    assert entry.note is not None
    assert entry.note.startswith("plain-language: en.stop-contact ('stop texting') via twilio SM")
    assert counted(gateway, "revoke", "en") == 1


async def test_spanish_revocation_is_confirmed_in_spanish(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("Por favor, no me envíen más mensajes"))
    assert response.headers["X-Stopgate-Revocation"] == "revoke"
    assert "Responda START" in await response.text()
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


async def test_ill_stop_by_later_blocks_nothing(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("I'll stop by later"))
    assert response.headers["X-Stopgate-Keyword"] == "none"
    assert response.headers["X-Stopgate-Revocation"] == "none"
    assert "<Message>" not in await response.text()
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    assert await history(gateway) == []
    assert await reviews(gateway) == []
    assert counted(gateway, "none", "") == 1


async def test_a_keyword_is_a_keyword_and_the_classifier_does_not_run(gateway: Gateway) -> None:
    response = await post_twilio(gateway, twilio_form("STOP"))
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
    assert "X-Stopgate-Revocation" not in response.headers
    [entry] = await history(gateway)
    assert entry.note is not None and entry.note.startswith("keyword 'stop'")


async def test_twilio_unclear_gets_one_clarification_and_a_review_entry(gateway: Gateway) -> None:
    first = await post_twilio(gateway, twilio_form("how do I unsubscribe?"))
    assert first.headers["X-Stopgate-Revocation"] == "unclear"
    assert first.headers["X-Stopgate-Keyword"] == "none"
    twiml = await first.text()
    assert "Do you want to stop receiving messages" in twiml and "Reply STOP" in twiml
    again = await post_twilio(gateway, twilio_form("not interested"))
    assert again.headers["X-Stopgate-Revocation"] == "unclear"
    assert "<Message>" not in await again.text(), "one clarification per pair and window"
    assert (await gateway.twilio_send(CUSTOMER)).status == 201, "unclear blocks nothing"
    second, first_entry = await reviews(gateway)
    assert first_entry["text"] == "how do I unsubscribe?"
    assert first_entry["rule"] == "en.unsubscribe"
    assert "guard question" in first_entry["explanation"]
    assert (first_entry["clarified"], second["clarified"]) == (True, False)
    assert (first_entry["from"], first_entry["to"]) == (CUSTOMER, BUSINESS)
    # Another business number may ask once too.
    other = await post_twilio(gateway, twilio_form("who is this?", to=OTHER_BUSINESS))
    assert "Do you want to stop" in await other.text()


async def test_a_replayed_unclear_message_is_reviewed_and_answered_once(gateway: Gateway) -> None:
    form = twilio_form("Stop this")
    first = await post_twilio(gateway, form)
    again = await post_twilio(gateway, form)
    assert "<Message>" in await first.text()
    assert "<Message>" not in await again.text()
    assert len(await reviews(gateway)) == 1


async def test_the_clarification_window_is_configurable(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(clarification_window=0)
    for text in ("how do I unsubscribe?", "not interested"):
        response = await post_twilio(gateway, twilio_form(text))
        assert "Do you want to stop" in await response.text()


async def test_plain_language_can_be_turned_off(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(plain_language=False)
    response = await post_twilio(gateway, twilio_form("please stop texting me"))
    assert response.headers["X-Stopgate-Keyword"] == "none"
    assert "X-Stopgate-Revocation" not in response.headers
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    await post_twilio(gateway, twilio_form("how do I unsubscribe?"))
    assert await reviews(gateway) == []


async def test_ringcentral_plain_language_revocation_refuses_with_sms_rc_413(
    rc_gateway: Gateway,
) -> None:
    response = await post_rc(rc_gateway, rc_event("Please remove me from your list. Thanks"))
    assert response.status == 200
    assert response.headers["X-Stopgate-Keyword"] == "opt_out"
    assert response.headers["X-Stopgate-Revocation"] == "revoke"
    body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "hi"}
    refused = await rc_gateway.rc_post(RC_SEND, body)
    assert refused.status == 400
    assert (await refused.json())["errorCode"] == "SMS-RC-413"
    replies = await confirmations(rc_gateway)
    assert len(replies) == 1 and "unsubscribed" in replies[0]["text"]
    [entry] = await history(rc_gateway)
    assert entry.note is not None and entry.note.startswith("plain-language: en.remove-me")


async def test_ringcentral_unclear_clarifies_once_through_the_outbox(
    rc_gateway: Gateway,
) -> None:
    for text in ("¿Quién es?", "no me interesa"):
        response = await post_rc(rc_gateway, rc_event(text))
        assert response.headers["X-Stopgate-Revocation"] == "unclear"
    replies = await confirmations(rc_gateway)
    assert len(replies) == 1
    assert replies[0]["text"].startswith("Acme: ¿Desea dejar de recibir mensajes")
    await run_once(rc_gateway.app)
    assert len(await rc_gateway.delivered(CUSTOMER)) == 1
    assert [e["language"] for e in await reviews(rc_gateway)] == ["es", "es"]


async def test_an_admin_opts_a_review_entry_out_or_dismisses_it(gateway: Gateway) -> None:
    await post_twilio(gateway, twilio_form("Stop this"))
    await post_twilio(gateway, twilio_form("who is this?", to=OTHER_BUSINESS))
    to_other, to_business = await reviews(gateway)

    opted = await gateway.client.post(f"/admin/reviews/{to_business['id']}/opt-out", headers=ADMIN)
    assert opted.status == 200, await opted.text()
    assert (await opted.json())["review"]["status"] == "opted-out"
    refused = await gateway.twilio_send(CUSTOMER)
    assert refused.status == 400 and (await refused.json())["code"] == 21610
    [entry] = await history(gateway)
    assert (entry.new_status.value, entry.source.value) == ("OptOut", "Recipient")
    assert entry.note is not None and entry.note.startswith(
        f"plain-language review #{to_business['id']}"
    )

    dismissed = await gateway.client.post(f"/admin/reviews/{to_other['id']}/dismiss", headers=ADMIN)
    assert dismissed.status == 200
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 201
    assert await reviews(gateway) == []
    assert [r["status"] for r in await reviews(gateway, "all")] == ["dismissed", "opted-out"]

    again = await gateway.client.post(f"/admin/reviews/{to_other['id']}/opt-out", headers=ADMIN)
    assert again.status == 409
    assert (await again.json())["error"]["reason"] == "review-not-open"
    unknown = await gateway.client.post("/admin/reviews/abc/dismiss", headers=ADMIN)
    assert unknown.status == 404


async def test_review_routes_need_a_token_and_writes_the_admin_role(
    make_gateway: MakeGateway,
) -> None:
    import hashlib

    from gateway.config import TokenSpec

    auditor = "auditor-token-for-reviews"
    gateway = await make_gateway(
        tokens=(TokenSpec("audit", hashlib.sha256(auditor.encode()).hexdigest(), "auditor"),)
    )
    await post_twilio(gateway, twilio_form("Stop this"))
    assert (await gateway.client.get("/admin/reviews")).status == 401
    as_auditor = {"Authorization": f"Bearer {auditor}"}
    listed = await gateway.client.get("/admin/reviews", headers=as_auditor)
    assert listed.status == 200
    [entry] = (await listed.json())["reviews"]
    write = await gateway.client.post(f"/admin/reviews/{entry['id']}/opt-out", headers=as_auditor)
    assert write.status == 403
    bad = await gateway.client.get("/admin/reviews?status=bogus", headers=ADMIN)
    assert bad.status == 400 and (await bad.json())["error"]["reason"] == "unknown-status"


async def test_store_down_a_plain_language_revocation_is_spooled_and_enforced(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gateway = await make_gateway(store=f"sqlite:///{tmp_path / 'stopgate.db'}?busy_timeout=0.2")
    assert (await gateway.twilio_send(CUSTOMER)).status == 201  # the pair is cached "allowed"
    holder = _lock_store(tmp_path / "stopgate.db")
    try:
        revoked = await post_twilio(gateway, twilio_form("Stop. Thank you"))
        assert revoked.status == 200
        assert revoked.headers["X-Stopgate-Revocation"] == "revoke"
        assert "START" in await revoked.text()
        assert (tmp_path / "spool.jsonl").stat().st_size > 0
        assert (await gateway.twilio_send(CUSTOMER)).status == 400  # enforced from the spool
        # An unclear message cannot be flagged now: acknowledged, but no clarifying text goes
        # out that the store has not recorded.
        unclear = await post_twilio(gateway, twilio_form("who is this?", to=OTHER_BUSINESS))
        assert unclear.status == 200
        assert "<Message>" not in await unclear.text()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await run_once(gateway.app)
    [entry] = await history(gateway)
    assert entry.note is not None and entry.note.startswith("plain-language: keyword-sentence")
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


async def test_the_app_is_told_the_plain_language_reading(
    make_gateway: MakeGateway, app_webhook: tuple[AppWebhook, str]
) -> None:
    hook, url = app_webhook
    gateway = await make_gateway(twilio_app_webhook=url, app_reply_deadline=0.2)
    await post_twilio(gateway, twilio_form("please stop texting me"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not hook.received:
        assert loop.time() < deadline, "the outbox never delivered the forward"
        await asyncio.sleep(0.05)
    [(headers, _)] = hook.received
    assert (headers["X-Stopgate-Keyword"], headers["X-Stopgate-Revocation"]) == (
        "opt_out",
        "revoke",
    )
