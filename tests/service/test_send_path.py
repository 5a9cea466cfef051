"""The send path through a real gateway app in front of the carrier simulator."""

from __future__ import annotations

import io
import json

import pytest

from gateway.keys import STORE
from tests.conftest import (
    BUSINESS,
    CUSTOMER,
    OTHER_BUSINESS,
    RC_BATCH,
    RC_SEND,
    SIM,
    TWILIO_SEND,
    Gateway,
    MakeGateway,
    basic,
)

WRITTEN_FORMS = [
    "+16505550111",
    "(650) 555-0111",
    "650.555.0111",
    "1-650-555-0111",
    "+1 650 555 0111",
    "tel:+1-650-555-0111",
    "＋１６５０５５５０１１１",
    "rcs:+16505550111",
    " +1 (650) 555-0111 ",
]


async def test_allowed_twilio_send_reaches_the_carrier(gateway: Gateway) -> None:
    response = await gateway.twilio_send(CUSTOMER, body="Your order shipped")
    assert response.status == 201, await response.text()
    assert response.headers["X-Stopgate-Decision"] == "allowed"
    message = await response.json()
    assert message["sid"].startswith("SM")
    delivered = await gateway.delivered()
    assert [(m["to"], m["text"]) for m in delivered] == [(CUSTOMER, "Your order shipped")]


@pytest.mark.parametrize("written", WRITTEN_FORMS)
async def test_opt_out_blocks_every_written_form(gateway: Gateway, written: str) -> None:
    await gateway.opt_out()
    response = await gateway.twilio_send(written)
    assert response.status == 400
    assert await response.json() == {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }
    assert response.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out"
    assert await gateway.delivered() == []


@pytest.mark.parametrize("written", WRITTEN_FORMS[1:5])
async def test_opt_out_written_in_any_form_blocks_the_e164_send(
    gateway: Gateway, written: str
) -> None:
    await gateway.set_consent({"from": "(650) 555-0100", "to": written, "optStatus": "OptOut"})
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 400
    assert await gateway.delivered() == []


async def test_pair_opt_out_leaves_other_business_numbers_open(gateway: Gateway) -> None:
    await gateway.opt_out()
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 201


async def test_wildcard_opt_out_blocks_every_business_number(gateway: Gateway) -> None:
    await gateway.set_consent({"from": "*", "to": CUSTOMER, "optStatus": "OptOut"})
    for sender in (BUSINESS, OTHER_BUSINESS):
        response = await gateway.twilio_send(CUSTOMER, from_=sender)
        assert response.status == 400
        assert response.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out-all"


async def test_newer_opt_in_reopens_the_pair(gateway: Gateway) -> None:
    await gateway.opt_out()
    await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn"})
    assert (await gateway.twilio_send(CUSTOMER)).status == 201


async def test_pair_opt_in_does_not_override_a_newer_wildcard(gateway: Gateway) -> None:
    await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn"})
    await gateway.set_consent({"from": "*", "to": CUSTOMER, "optStatus": "OptOut"})
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


async def test_require_opt_in_mode_blocks_pairs_without_a_record(
    make_gateway: MakeGateway,
) -> None:
    from policy.consent import DefaultConsent

    gateway = await make_gateway(consent_default=DefaultConsent.REQUIRE_OPT_IN)
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 400
    assert response.headers["X-Stopgate-Decision"] == "blocked; reason=no-opt-in"
    await gateway.set_consent({"from": "*", "to": CUSTOMER, "optStatus": "OptIn"})
    assert (await gateway.twilio_send(CUSTOMER)).status == 201


async def test_messaging_service_opt_out_covers_its_numbers(make_gateway: MakeGateway) -> None:
    service = "MG" + "ab" * 16
    gateway = await make_gateway(messaging_services={service: (BUSINESS,)})
    await gateway.set_consent({"from": service, "to": CUSTOMER, "optStatus": "OptOut"})
    by_number = await gateway.twilio_send(CUSTOMER)
    assert by_number.status == 400
    assert by_number.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out-service"
    by_service = await gateway.twilio_send(CUSTOMER, from_=None, MessagingServiceSid=service)
    assert by_service.status == 400
    assert (await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)).status == 201


async def test_ringcentral_send_allowed_and_blocked(gateway: Gateway) -> None:
    token = await gateway.rc_token()
    body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "hi"}
    allowed = await gateway.rc_post(RC_SEND, body, token)
    assert allowed.status == 200, await allowed.text()
    assert (await allowed.json())["messageStatus"] == "Queued"
    await gateway.opt_out()
    blocked = await gateway.rc_post(RC_SEND, body, token)
    assert blocked.status == 400
    error = await blocked.json()
    assert error["errorCode"] == "SMS-RC-413"
    assert error["errors"][0]["parameterName"] == "to"
    assert len(await gateway.delivered()) == 1


async def test_group_send_with_one_blocked_recipient_is_refused_whole(gateway: Gateway) -> None:
    await gateway.opt_out(to="+16505550112")
    body = {
        "from": {"phoneNumber": BUSINESS},
        "to": [{"phoneNumber": CUSTOMER}, {"phoneNumber": "(650) 555-0112"}],
        "text": "group",
    }
    response = await gateway.rc_post(RC_SEND, body)
    assert response.status == 400
    error = await response.json()
    assert "(650) 555-0112" in error["errors"][0]["message"]
    assert await gateway.delivered() == []


async def test_batch_drops_blocked_recipients_and_reports_their_index(gateway: Gateway) -> None:
    await gateway.opt_out(to="+16505550112")
    body = {
        "from": BUSINESS,
        "text": "batch",
        "messages": [
            {"to": [CUSTOMER]},
            {"to": ["+16505550112"]},
            {"to": ["+16505550113"], "text": "own text"},
        ],
    }
    response = await gateway.rc_post(RC_BATCH, body)
    assert response.status in (200, 201, 202), await response.text()
    reply = await response.json()
    assert [(r["index"], r["to"], r["errorCode"]) for r in reply["rejected"]] == [
        (1, ["+16505550112"], "SMS-RC-413")
    ]
    assert reply["batchSize"] == 3
    delivered = {(m["to"], m["text"]) for m in await gateway.delivered()}
    assert delivered == {(CUSTOMER, "batch"), ("+16505550113", "own text")}


async def test_batch_with_every_recipient_blocked_is_refused(gateway: Gateway) -> None:
    await gateway.opt_out()
    body = {"from": BUSINESS, "text": "batch", "messages": [{"to": [CUSTOMER]}]}
    response = await gateway.rc_post(RC_BATCH, body)
    assert response.status == 400
    assert (await response.json())["errorCode"] == "SMS-RC-413"
    assert await gateway.delivered() == []


async def test_shadow_mode_forwards_and_marks_what_it_would_block(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway(mode="shadow")
    await gateway.opt_out()
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 201
    assert response.headers["X-Stopgate-Decision"] == "would-block; reason=opt-out"
    assert len(await gateway.delivered()) == 1
    log = await gateway.app[STORE].blocked_sends(before_id=None, limit=10)
    assert [entry.reason for _, entry in log] == ["would-block:opt-out"]


async def test_blocked_send_is_logged_without_its_text_by_default(gateway: Gateway) -> None:
    await gateway.opt_out()
    await gateway.twilio_send("(650) 555-0111", body="secret offer")
    log = await gateway.app[STORE].blocked_sends(before_id=None, limit=10)
    assert len(log) == 1
    entry = log[0][1]
    assert (entry.dialect, entry.from_key, entry.to_key, entry.reason) == (
        "twilio",
        BUSINESS,
        CUSTOMER,
        "opt-out",
    )
    assert entry.text is None and entry.text_length == len("secret offer")
    assert len(entry.text_sha256) == 64 and entry.request_id


async def test_footer_always_is_appended_and_counted(make_gateway: MakeGateway) -> None:
    from policy.footer import FooterMode

    gateway = await make_gateway(footer=FooterMode.ALWAYS)
    response = await gateway.twilio_send(CUSTOMER, body="a" * 150)
    assert response.status == 201
    assert response.headers["X-Stopgate-Segments"] == "1->2"
    [message] = await gateway.delivered()
    assert message["text"] == "a" * 150 + "\nReply STOP to opt out"


async def test_footer_first_is_sent_once_per_pair_until_it_opts_in_again(
    make_gateway: MakeGateway,
) -> None:
    from policy.footer import FooterMode

    gateway = await make_gateway(footer=FooterMode.FIRST)
    token = await gateway.rc_token()
    body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "hi"}
    for _ in range(2):
        assert (await gateway.rc_post(RC_SEND, body, token)).status == 200
    await gateway.opt_out()
    await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn"})
    assert (await gateway.rc_post(RC_SEND, body, token)).status == 200
    texts = [m["text"] for m in await gateway.delivered()]
    assert texts == ["hi\nReply STOP to opt out", "hi", "hi\nReply STOP to opt out"]


async def test_footer_is_not_added_when_the_text_has_instructions(
    make_gateway: MakeGateway,
) -> None:
    from policy.footer import FooterMode

    gateway = await make_gateway(footer=FooterMode.ALWAYS)
    await gateway.twilio_send(CUSTOMER, body="Sale! Reply STOP to opt out")
    [message] = await gateway.delivered()
    assert message["text"] == "Sale! Reply STOP to opt out"


async def test_wrong_carrier_credentials_reveal_nothing_about_consent(gateway: Gateway) -> None:
    await gateway.opt_out()
    response = await gateway.client.post(
        TWILIO_SEND,
        data={"To": CUSTOMER, "From": BUSINESS, "Body": "x"},
        headers=basic(SIM.twilio_account_sid, "wrong-token"),
    )
    assert response.status == 401
    assert (await response.json())["code"] == 20003
    body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "x"}
    rc = await gateway.rc_post(RC_SEND, body, token="not-a-token")
    assert rc.status == 401
    assert await gateway.delivered() == []


async def test_twilio_api_key_is_checked_once_against_the_carrier(gateway: Gateway) -> None:
    auth = basic(SIM.twilio_api_key_sid, SIM.twilio_api_key_secret)
    for _ in range(2):
        response = await gateway.client.post(
            TWILIO_SEND, data={"To": CUSTOMER, "From": BUSINESS, "Body": "x"}, headers=auth
        )
        assert response.status == 201, await response.text()


BAD_TWILIO = [
    ("missing-to", {"From": BUSINESS, "Body": "x"}, 400, 21604),
    ("missing-from", {"To": CUSTOMER, "Body": "x"}, 400, 21603),
    ("too-short", {"To": "+1555", "From": BUSINESS, "Body": "x"}, 400, 21211),
    ("not-a-customer-address", {"To": "call me", "From": BUSINESS, "Body": "x"}, 400, 21211),
    ("unparseable", {"To": "+1 call me now please", "From": BUSINESS, "Body": "x"}, 400, 21211),
    ("invalid-service-sid", {"To": CUSTOMER, "MessagingServiceSid": "MG1"}, 400, 21701),
]


@pytest.mark.parametrize(("reason", "form", "status", "code"), BAD_TWILIO)
async def test_bad_twilio_input_is_refused_in_twilio_shape(
    gateway: Gateway, reason: str, form: dict[str, str], status: int, code: int
) -> None:
    response = await gateway.client.post(
        TWILIO_SEND, data=form, headers=basic(SIM.twilio_account_sid, SIM.twilio_auth_token)
    )
    assert response.status == status
    body = await response.json()
    assert (body["reason"], body["code"], body["status"]) == (reason, code, status)
    assert await gateway.delivered() == []


async def test_twilio_send_with_duplicated_to_is_refused(gateway: Gateway) -> None:
    response = await gateway.client.post(
        TWILIO_SEND,
        data=[("To", CUSTOMER), ("To", "+16505550112"), ("From", BUSINESS)],
        headers=basic(SIM.twilio_account_sid, SIM.twilio_auth_token),
    )
    assert response.status == 400
    assert (await response.json())["reason"] == "ambiguous-parameter"


BAD_RC = [
    ("malformed-json", b"{not json", "application/json", 400, "malformed-body"),
    ("not-an-object", b"[1]", "application/json", 400, "malformed-body"),
    (
        "missing-to",
        b'{"from": {"phoneNumber": "+16505550100"}}',
        "application/json",
        400,
        "missing-to",
    ),
    (
        "empty-to",
        b'{"from": {"phoneNumber": "+16505550100"}, "to": []}',
        "application/json",
        400,
        "missing-to",
    ),
    (
        "missing-from",
        b'{"to": [{"phoneNumber": "+16505550111"}]}',
        "application/json",
        400,
        "missing-from",
    ),
    (
        "impossible-to",
        b'{"from": {"phoneNumber": "+16505550100"}, "to": [{"phoneNumber": "+1 650"}]}',
        "application/json",
        400,
        "too-short",
    ),
    ("wrong-content-type", b"to=1", "text/plain", 415, "unsupported-content-type"),
    (
        "text-not-string",
        b'{"from": {"phoneNumber": "+16505550100"}, "to": [{"phoneNumber": "+16505550111"}],'
        b' "text": 5}',
        "application/json",
        400,
        "malformed-text",
    ),
]


@pytest.mark.parametrize(("case", "body", "content_type", "status", "reason"), BAD_RC)
async def test_bad_ringcentral_input_is_refused_in_ringcentral_shape(
    gateway: Gateway, case: str, body: bytes, content_type: str, status: int, reason: str
) -> None:
    token = await gateway.rc_token()
    response = await gateway.client.post(
        RC_SEND,
        data=body,
        headers={"Authorization": f"bearer {token}", "Content-Type": content_type},
    )
    assert response.status == status, case
    error = await response.json()
    assert error["reason"] == reason
    assert error["errors"][0]["errorCode"] == error["errorCode"]
    assert await gateway.delivered() == []


async def test_body_over_the_limit_is_refused_with_413(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(max_body_bytes=4096)
    response = await gateway.twilio_send(CUSTOMER, body="x" * 5000)
    assert response.status == 413
    assert (await response.json())["reason"] == "body-too-large"
    assert await gateway.delivered() == []


async def test_default_body_limit_admits_a_large_mms(gateway: Gateway) -> None:
    from aiohttp import FormData

    token = await gateway.rc_token()
    form = FormData()
    document = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "pic"}
    form.add_field("json", json.dumps(document), content_type="application/json")
    form.add_field(
        "attachment",
        io.BytesIO(b"\x89PNG" + b"\0" * 1_500_000),
        filename="a.png",
        content_type="image/png",
    )
    response = await gateway.client.post(
        "/restapi/v1.0/account/~/extension/~/mms",
        data=form,
        headers={"Authorization": f"bearer {token}"},
    )
    assert response.status == 200, await response.text()
    await gateway.opt_out()
    form2 = FormData()
    form2.add_field("json", json.dumps(document), content_type="application/json")
    form2.add_field(
        "attachment", io.BytesIO(b"\x89PNG"), filename="a.png", content_type="image/png"
    )
    blocked = await gateway.client.post(
        "/restapi/v1.0/account/~/extension/~/mms",
        data=form2,
        headers={"Authorization": f"bearer {token}"},
    )
    assert blocked.status == 400
    assert len(await gateway.delivered()) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/restapi/v1.0/account/~/extension/~/SMS",
        "/restapi//v1.0/account/~/extension/~/sms",
        "/restapi/v1.0/account/~/extension/~/sms/",
        "/restapi/v1.0/x/../account/~/extension/~/%73ms",
    ],
)
async def test_path_spellings_of_a_send_are_still_checked(gateway: Gateway, path: str) -> None:
    await gateway.opt_out()
    body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "x"}
    response = await gateway.rc_post(path, body)
    assert response.status == 400
    assert (await response.json())["errorCode"] == "SMS-RC-413"


@pytest.mark.parametrize(
    "path",
    ["/restapi/v1.0/account//extension/~/sms", "/restapi/v1.0/account/~/sms"],
)
async def test_unknown_send_path_shapes_are_refused(gateway: Gateway, path: str) -> None:
    body = {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "x"}
    response = await gateway.rc_post(path, body)
    assert response.status == 400
    assert (await response.json())["reason"] == "unknown-path-shape"
    assert await gateway.delivered() == []


async def test_other_carrier_routes_are_forwarded_unchanged(gateway: Gateway) -> None:
    token = await gateway.rc_token()
    response = await gateway.client.get(
        "/restapi/v1.0/account/~", headers={"Authorization": f"bearer {token}"}
    )
    assert response.status == 200
    assert str((await response.json())["id"]) == SIM.rc_account_id


@pytest.mark.parametrize("path", ["/", "/etc/passwd", "/admin/../restapi", "/v1/send"])
async def test_paths_outside_the_carriers_are_404_and_never_forwarded(
    gateway: Gateway, path: str
) -> None:
    response = await gateway.client.post(path, data=b"x")
    assert response.status == 404


async def test_store_down_refuses_sends_with_503(gateway: Gateway) -> None:
    await gateway.app[STORE].close()
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 503
    body = await response.json()
    assert (body["code"], body["reason"]) == (20503, "consent-unavailable")
    token_free = await gateway.client.get("/readyz")
    assert token_free.status == 503
    assert await gateway.delivered() == []


async def test_upstream_unreachable_is_502_in_dialect_shape(make_gateway: MakeGateway) -> None:
    from tests.support.servers import free_port

    gateway = await make_gateway(twilio_upstream=f"http://127.0.0.1:{free_port()}")
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 502
    assert (await response.json())["reason"] == "upstream-unreachable"


async def test_upstream_timeout_is_504_and_not_retried(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(upstream_timeout=0.5)
    await gateway.sim_fault(mode="timeout", count=1)
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 504
    assert (await response.json())["reason"] == "upstream-timeout"


async def test_upstream_errors_are_relayed_as_they_came(gateway: Gateway) -> None:
    await gateway.sim_fault(mode="5xx", count=1)
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status >= 500
    assert "code" in await response.json()


async def test_healthz_and_readyz(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).status == 200
    ready = await gateway.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["store"] == "ok"


async def test_metrics_count_decisions_without_numbers(gateway: Gateway) -> None:
    await gateway.twilio_send(CUSTOMER)
    await gateway.opt_out()
    await gateway.twilio_send(CUSTOMER)
    text = await (await gateway.client.get("/metrics")).text()
    assert 'stopgate_sends_total{decision="allowed",dialect="twilio",reason=""} 1.0' in text
    assert 'stopgate_sends_total{decision="blocked",dialect="twilio",reason="opt-out"} 1.0' in text
    assert "6505550111" not in text


@pytest.mark.parametrize("query", ["?To=%2B16505550111", "?to=1", "?From=x&Body=y"])
async def test_send_parameters_in_the_query_string_are_refused(
    gateway: Gateway, query: str
) -> None:
    await gateway.opt_out()
    response = await gateway.client.post(
        TWILIO_SEND + query,
        data={"To": "+16505550199", "From": BUSINESS, "Body": "x"},
        headers=basic(SIM.twilio_account_sid, SIM.twilio_auth_token),
    )
    assert response.status == 400
    assert (await response.json())["reason"] == "parameters-in-query"
    assert await gateway.delivered() == []


@pytest.mark.parametrize(
    "path", ["/x/../restapi/v1.0/account//sms", "/%72estapi/v1.0/account/~/sms"]
)
async def test_odd_spellings_of_an_unknown_send_path_are_400_not_500(
    gateway: Gateway, path: str
) -> None:
    response = await gateway.client.post(
        path, json={}, headers={"Authorization": "bearer x"}, skip_auto_headers=()
    )
    assert response.status == 400
    assert (await response.json())["reason"] == "unknown-path-shape"
