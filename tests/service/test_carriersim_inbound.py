"""The carrier simulator delivering inbound webhooks, and RingCentral subscriptions.

A small fake "gateway" (an aiohttp app in this file) records what arrives. It checks the Twilio
signature with the official SDK's ``RequestValidator``, so the simulator's own signing is
proven against Twilio's reference code, answers TwiML with a ``<Message>``, and answers
RingCentral's validation handshake in good and bad ways.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ringcentral import SDK
from twilio.request_validator import RequestValidator

from gateway.carriersim import SimCredentials, create_sim_app
from gateway.carriersim.inbound import TwimlMessage, parse_twiml, twilio_signature
from tests.support.servers import free_port

CREDS = SimCredentials()
BUSINESS = "+16505550100"
OTHER_BUSINESS = "+16505550199"
CUSTOMER = "+16505550111"
SERVICE = "MG5709a7e55709a7e55709a7e55709a7e5"
SUBSCRIPTION = "/restapi/v1.0/subscription"
INSTANT_SMS = "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS"
RC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TWILIO_FIELDS = {
    "ToCountry",
    "ToState",
    "SmsMessageSid",
    "NumMedia",
    "ToCity",
    "FromZip",
    "SmsSid",
    "FromState",
    "SmsStatus",
    "FromCity",
    "Body",
    "FromCountry",
    "To",
    "ToZip",
    "NumSegments",
    "MessageSid",
    "AccountSid",
    "From",
    "ApiVersion",
}

Received = list[dict[str, Any]]
RECEIVED = web.AppKey("received", Received)
RELEASE = web.AppKey("release", asyncio.Event)


# ---- the fake gateway --------------------------------------------------------------------


async def twilio_webhook(request: web.Request) -> web.Response:
    raw = await request.read()
    signature = request.headers.get("X-Twilio-Signature", "")
    url = str(request.url)
    params: Any
    if request.content_type == "application/json":
        params = raw.decode("utf-8")
        fields = json.loads(raw)
    else:
        params = await request.post()
        fields = {name: str(value) for name, value in params.items()}
    valid = RequestValidator(CREDS.twilio_auth_token).validate(url, params, signature)
    request.app[RECEIVED].append(
        {"kind": "twilio", "url": url, "headers": dict(request.headers), "raw": raw}
        | {"fields": fields, "valid": valid}
    )
    if not valid:
        return web.Response(status=403, text="bad signature")
    if fields["Body"] == "BROKEN":
        return web.Response(text="<Response><Message>oops</Response>", content_type="text/xml")
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>Got: {fields['Body']}</Message></Response>"
    )
    return web.Response(text=twiml, content_type="text/xml")


async def rc_webhook(request: web.Request) -> web.Response:
    raw = await request.read()
    token = request.headers.get("Validation-Token")
    if token is not None and not raw:
        request.app[RECEIVED].append({"kind": "handshake", "url": str(request.url)})
        return web.Response(headers={"Validation-Token": token})
    verification = request.headers.get("Verification-Token")
    request.app[RECEIVED].append(
        {"kind": "ringcentral", "url": str(request.url), "headers": dict(request.headers)}
        | {"json": json.loads(raw), "verification": verification}
    )
    if request.path == "/webhooks/ringcentral" and verification != CREDS.rc_verification_token:
        return web.Response(status=401, text="bad verification token")
    return web.Response()


async def hook(request: web.Request) -> web.Response:
    """Handshake behaviours by path: /hooks/echo answers properly; the others do not."""
    kind = request.match_info["kind"]
    raw = await request.read()
    token = request.headers.get("Validation-Token", "")
    if raw:  # a notification, not a handshake
        return await rc_webhook(request)
    request.app[RECEIVED].append(
        {"kind": "handshake", "url": str(request.url), "raw": raw, "headers": dict(request.headers)}
    )
    echo = {"Validation-Token": token}
    if kind == "echo":
        return web.Response(headers=echo)
    if kind == "silent":
        return web.Response()
    if kind == "wrong":
        return web.Response(headers={"Validation-Token": token + "x"})
    if kind == "status":
        return web.Response(status=202, headers=echo)
    if kind == "big-body":
        return web.Response(headers=echo, text="x" * 1000)
    if kind == "big-header":
        return web.Response(headers={**echo, "X-Padding": "p" * 900})
    if kind == "slow":
        # Later than the 3 s limit; the test releases it once the simulator gave up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(request.app[RELEASE].wait(), timeout=3.5)
        return web.Response(headers=echo)
    raise web.HTTPNotFound


def fake_gateway() -> web.Application:
    app = web.Application()
    app[RECEIVED] = []
    app[RELEASE] = asyncio.Event()
    app.router.add_post("/webhooks/twilio", twilio_webhook)
    app.router.add_post("/webhooks/ringcentral", rc_webhook)
    app.router.add_post("/hooks/{kind}", hook)
    return app


# ---- fixtures and helpers ----------------------------------------------------------------

ServerFactory = Callable[..., Awaitable[TestServer]]


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def gateway(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(fake_gateway())


@pytest.fixture
async def sim(aiohttp_server: ServerFactory, gateway: TestServer) -> TestServer:
    return await aiohttp_server(create_sim_app(gateway_url=base_url(gateway)))


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def received(gateway: TestServer, kind: str | None = None) -> Received:
    return [r for r in gateway.app[RECEIVED] if kind is None or r["kind"] == kind]


async def inbound(
    http: aiohttp.ClientSession, sim: TestServer, expect: int = 200, **body: Any
) -> dict[str, Any]:
    body = {"from": CUSTOMER, "to": BUSINESS, "text": "STOP", **body}
    async with http.post(sim.make_url("/sim/inbound"), json=body) as reply:
        answer: dict[str, Any] = await reply.json()
        assert reply.status == expect, answer
    return answer


async def sim_messages(http: aiohttp.ClientSession, sim: TestServer) -> list[dict[str, Any]]:
    async with http.get(sim.make_url("/sim/messages")) as reply:
        messages: list[dict[str, Any]] = (await reply.json())["messages"]
    return messages


async def rc_bearer(http: aiohttp.ClientSession, sim: TestServer) -> dict[str, str]:
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": CREDS.rc_jwt}
    pair = f"{CREDS.rc_client_id}:{CREDS.rc_client_secret}".encode()
    auth = "Basic " + base64.b64encode(pair).decode()
    async with http.post(
        sim.make_url("/restapi/oauth/token"), data=form, headers={"Authorization": auth}
    ) as reply:
        assert reply.status == 200
        token = (await reply.json())["access_token"]
    return {"Authorization": f"bearer {token}"}


async def rc_call(
    http: aiohttp.ClientSession,
    sim: TestServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    auth: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = auth if auth is not None else await rc_bearer(http, sim)
    async with http.request(method, sim.make_url(path), json=body, headers=headers) as reply:
        text = await reply.text()
        return reply.status, json.loads(text) if text else None


async def subscribe(
    http: aiohttp.ClientSession, sim: TestServer, address: str, **body: Any
) -> tuple[int, Any]:
    request = {
        "eventFilters": [INSTANT_SMS],
        "deliveryMode": {"transportType": "WebHook", "address": address},
        **body,
    }
    return await rc_call(http, sim, "POST", SUBSCRIPTION, request)


# ---- the Twilio signature against the SDK ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("https://example.com/webhooks/twilio", {"Body": "STOP", "From": CUSTOMER, "To": BUSINESS}),
        (
            "https://example.com:8443/hooks/twilio?tenant=a&x=%2B1",
            {"Body": "Stop ✋ & 50% off + more = ?", "body": "lower", "To": "", "ToCity": "é"},
        ),
        ("http://127.0.0.1:8080/webhooks/twilio", {}),
    ],
    ids=["plain", "query-unicode-case", "no-params"],
)
def test_signature_matches_the_sdk(url: str, params: dict[str, str]) -> None:
    validator = RequestValidator(CREDS.twilio_auth_token)
    ours = twilio_signature(CREDS.twilio_auth_token, url, params.items())
    assert ours == validator.compute_signature(url, params)
    assert validator.validate(url, params, ours)
    assert not validator.validate(url, {**params, "Extra": "1"}, ours)


def test_signature_of_a_default_port_url_passes_either_form() -> None:
    validator = RequestValidator(CREDS.twilio_auth_token)
    signed = twilio_signature(CREDS.twilio_auth_token, "https://example.com/w", [("A", "1")])
    assert validator.validate("https://example.com:443/w", {"A": "1"}, signed)


# ---- Twilio webhooks ---------------------------------------------------------------------


async def test_twilio_form_webhook(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    text = "Stop ✋ & 50% off + more = ?"
    answer = await inbound(http, sim, provider="twilio", text=text)

    [hit] = received(gateway, "twilio")
    assert hit["valid"], "the official SDK rejected the simulator's signature"
    assert hit["url"] == f"{base_url(gateway)}/webhooks/twilio"
    fields = hit["fields"]
    assert set(fields) == TWILIO_FIELDS
    sid = answer["message_id"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    assert fields["MessageSid"] == fields["SmsSid"] == fields["SmsMessageSid"] == sid
    expected = {
        "From": CUSTOMER,
        "To": BUSINESS,
        "Body": text,
        "AccountSid": CREDS.twilio_account_sid,
        "SmsStatus": "received",
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
        "ToCountry": "US",
        "FromCountry": "US",
        "ToState": "CA",
    }
    assert expected.items() <= fields.items()
    headers = hit["headers"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["User-Agent"] == "TwilioProxy/1.1"
    assert headers["I-Twilio-Idempotency-Token"]
    # Form-encoded as Twilio does: spaces as "+", a literal "+" as %2B.
    assert b"From=%2B16505550111" in hit["raw"]
    assert b"Body=Stop+%E2%9C%8B+%26+50%25+off+%2B+more+%3D+%3F" in hit["raw"]

    assert answer["status"] == 200
    assert answer["headers"]["Content-Type"].startswith("text/xml")
    assert f"<Message>Got: {text}</Message>" in answer["body"]
    assert answer["url"] == hit["url"]


async def test_twiml_message_is_recorded_as_a_delivered_reply(
    http: aiohttp.ClientSession, sim: TestServer
) -> None:
    answer = await inbound(http, sim, provider="twilio", text="HELP")
    [reply] = await sim_messages(http, sim)
    assert reply["provider"] == "twilio"
    assert reply["api"] == "twiml-reply"
    assert (reply["from"], reply["to"], reply["text"]) == (BUSINESS, CUSTOMER, "Got: HELP")
    assert reply["message_id"].startswith("SM")
    assert reply["message_id"] != answer["message_id"]
    assert answer["replies"] == [reply]


async def test_malformed_twiml_is_reported_and_nothing_is_sent(
    http: aiohttp.ClientSession, sim: TestServer
) -> None:
    answer = await inbound(http, sim, provider="twilio", text="BROKEN")
    assert answer["status"] == 200
    assert answer["twiml_error"].startswith("12100 Document parse failure")
    assert answer["replies"] == []
    assert await sim_messages(http, sim) == []


def test_parse_twiml() -> None:
    document = (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        "<Message>  plain  </Message>"
        '<Message to="+15550001111" from="+15550002222"><Body>with body</Body>'
        "<Media>https://example.com/a.png</Media></Message>"
        "<Message></Message><Redirect>/elsewhere</Redirect></Response>"
    )
    assert parse_twiml(document) == [
        TwimlMessage(text="plain", to=None, from_=None, media=()),
        TwimlMessage(
            text="with body",
            to="+15550001111",
            from_="+15550002222",
            media=("https://example.com/a.png",),
        ),
    ]
    assert parse_twiml("<Response/>") == []
    for bad in [
        "<Response><Message>x</Response>",
        "<Say>x</Say>",
        '<!DOCTYPE r [<!ENTITY e "x">]><Response><Message>&e;</Message></Response>',
    ]:
        with pytest.raises(ValueError):
            parse_twiml(bad)


async def test_twilio_json_body_is_signed_through_body_sha256(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    await inbound(http, sim, provider="twilio", text="Arrêt ✋", json_body=True)
    [hit] = received(gateway, "twilio")
    assert hit["valid"]
    assert hit["headers"]["Content-Type"] == "application/json"
    query = parse_qs(urlsplit(hit["url"]).query)
    assert query == {"bodySHA256": [hashlib.sha256(hit["raw"]).hexdigest()]}
    assert set(hit["fields"]) == TWILIO_FIELDS
    assert hit["fields"]["Body"] == "Arrêt ✋"
    # The signature covers the URL alone: no parameters are appended.
    expected = twilio_signature(CREDS.twilio_auth_token, hit["url"])
    assert hit["headers"]["X-Twilio-Signature"] == expected


async def test_opt_out_type_and_messaging_service(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    await inbound(http, sim, provider="twilio", opt_out_type="stop", messaging_service_sid=SERVICE)
    [hit] = received(gateway, "twilio")
    assert hit["valid"]
    assert set(hit["fields"]) == TWILIO_FIELDS | {"OptOutType", "MessagingServiceSid"}
    assert hit["fields"]["OptOutType"] == "STOP"
    assert hit["fields"]["MessagingServiceSid"] == SERVICE
    [reply] = await sim_messages(http, sim)
    assert reply["messaging_service_sid"] == SERVICE
    assert reply["from"] == BUSINESS


@pytest.mark.parametrize("json_body", [False, True], ids=["form", "json"])
async def test_forged_twilio_signature_is_rejected_by_the_sdk(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer, json_body: bool
) -> None:
    answer = await inbound(http, sim, provider="twilio", bad_signature=True, json_body=json_body)
    [hit] = received(gateway, "twilio")
    assert not hit["valid"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{27}=", hit["headers"]["X-Twilio-Signature"])
    assert (answer["status"], answer["body"], answer["replies"]) == (403, "bad signature", [])
    assert await sim_messages(http, sim) == []


async def test_message_ids_are_unique_unless_given(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    ids = {(await inbound(http, sim, provider=p))["message_id"] for p in ["twilio"] * 3}
    ids |= {(await inbound(http, sim, provider=p))["message_id"] for p in ["ringcentral"] * 3}
    assert len(ids) == 6
    given = await inbound(http, sim, provider="twilio", message_id="SM" + "ab" * 16)
    assert given["message_id"] == "SM" + "ab" * 16
    assert received(gateway, "twilio")[-1]["fields"]["MessageSid"] == "SM" + "ab" * 16


# ---- RingCentral notifications -----------------------------------------------------------


async def test_rc_notification_without_subscription(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    answer = await inbound(http, sim, provider="ringcentral", text="STOP")
    [hit] = received(gateway, "ringcentral")
    assert hit["url"] == f"{base_url(gateway)}/webhooks/ringcentral"
    assert hit["verification"] == CREDS.rc_verification_token
    assert hit["headers"]["Content-Type"].startswith("application/json")
    event = hit["json"]
    acc, ext = CREDS.rc_account_id, CREDS.rc_extension_id
    assert event["event"] == (
        f"/restapi/v1.0/account/{acc}/extension/{ext}/message-store/instant?type=SMS"
    )
    assert event["ownerId"] == ext
    assert RC_TIME.match(event["timestamp"])
    assert event["uuid"] and event["subscriptionId"]
    body = event["body"]
    message_id = answer["message_id"]
    conversation = body["conversation"]["id"]
    assert body == {
        "id": message_id,
        "to": [{"phoneNumber": BUSINESS, "name": "Sim Sender"}],
        "from": {"phoneNumber": CUSTOMER},
        "type": "SMS",
        "creationTime": body["creationTime"],
        "lastModifiedTime": body["creationTime"],
        "readStatus": "Unread",
        "priority": "Normal",
        "attachments": [{"id": message_id, "type": "Text", "contentType": "text/plain"}],
        "direction": "Inbound",
        "availability": "Alive",
        "subject": "STOP",
        "messageStatus": "Received",
        "conversationId": conversation,
        "conversation": {"id": conversation},
    }
    assert RC_TIME.match(body["creationTime"])
    assert isinstance(message_id, str) and message_id.isdigit()
    assert (answer["status"], answer["body"]) == (200, "")
    assert answer["subscription_id"] == event["subscriptionId"]
    # Nothing is "delivered" by the carrier for an RC inbound: confirmations go via the API.
    assert await sim_messages(http, sim) == []


async def test_rc_notification_to_several_numbers(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    await inbound(http, sim, provider="ringcentral", to=[BUSINESS, OTHER_BUSINESS])
    [hit] = received(gateway, "ringcentral")
    assert [to["phoneNumber"] for to in hit["json"]["body"]["to"]] == [BUSINESS, OTHER_BUSINESS]


async def test_rc_forged_verification_token(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    answer = await inbound(http, sim, provider="ringcentral", bad_signature=True)
    [hit] = received(gateway, "ringcentral")
    assert hit["verification"] and hit["verification"] != CREDS.rc_verification_token
    assert answer["status"] == 401


# ---- /sim/inbound input and failures -----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"provider": "sms", "from": CUSTOMER, "to": BUSINESS, "text": "x"},
        {"provider": "twilio", "from": CUSTOMER, "to": BUSINESS},
        {"provider": "twilio", "from": CUSTOMER, "to": [BUSINESS], "text": "x"},
        {"provider": "ringcentral", "from": CUSTOMER, "to": [], "text": "x"},
        {"provider": "ringcentral", "from": CUSTOMER, "to": BUSINESS, "text": "x", "json_body": 1},
        {"provider": "ringcentral", "from": "", "to": BUSINESS, "text": "x"},
        {"provider": "ringcentral", "from": CUSTOMER, "to": BUSINESS, "text": 5},
        {
            "provider": "ringcentral",
            "from": CUSTOMER,
            "to": BUSINESS,
            "text": "x",
            "opt_out_type": "STOP",
        },
        {
            "provider": "twilio",
            "from": CUSTOMER,
            "to": BUSINESS,
            "text": "x",
            "opt_out_type": "STAHP",
        },
        {"provider": "twilio", "from": CUSTOMER, "to": BUSINESS, "text": "x", "json_body": "yes"},
        {"provider": "twilio", "from": CUSTOMER, "to": BUSINESS, "text": "x", "gateway": "ftp://h"},
        {"provider": "twilio", "from": CUSTOMER, "to": BUSINESS, "text": "x", "Body": "typo"},
        ["twilio"],
    ],
)
async def test_inbound_bad_input(http: aiohttp.ClientSession, sim: TestServer, body: Any) -> None:
    async with http.post(sim.make_url("/sim/inbound"), json=body) as reply:
        assert reply.status == 400
        assert (await reply.json())["error"] == "invalid_request"


async def test_inbound_body_must_be_json(http: aiohttp.ClientSession, sim: TestServer) -> None:
    async with http.post(sim.make_url("/sim/inbound"), data=b"provider=twilio") as reply:
        assert reply.status == 400


@pytest.mark.parametrize("provider", ["twilio", "ringcentral"])
async def test_unreachable_gateway_is_502(
    http: aiohttp.ClientSession, sim: TestServer, provider: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    answer = await inbound(http, sim, 502, provider=provider, gateway=nowhere)
    assert answer["error"] == "gateway_unreachable"
    assert answer["url"].startswith(nowhere + "/webhooks/")
    assert answer["message_id"]


@pytest.mark.parametrize("provider", ["twilio", "ringcentral"])
async def test_gateway_given_per_request_or_none_at_all(
    http: aiohttp.ClientSession,
    aiohttp_server: ServerFactory,
    gateway: TestServer,
    provider: str,
) -> None:
    bare = await aiohttp_server(create_sim_app())
    answer = await inbound(http, bare, 400, provider=provider)
    assert answer["error"] == "no_gateway"
    answer = await inbound(http, bare, provider=provider, gateway=base_url(gateway) + "/")
    assert answer["status"] == 200
    assert len(received(gateway)) == 1


# ---- RingCentral subscriptions -----------------------------------------------------------


async def test_subscription_handshake_then_notifications_go_there(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    address = f"{base_url(gateway)}/hooks/echo"
    status, record = await subscribe(
        http,
        sim,
        address,
        expiresIn=3600,
        deliveryMode={
            "transportType": "WebHook",
            "address": address,
            "verificationToken": "vt-123",
        },
    )
    assert status == 200, record
    [handshake] = received(gateway, "handshake")
    assert handshake["url"] == address and handshake["raw"] == b""
    assert re.fullmatch(r"[0-9a-f-]{36}", handshake["headers"]["Validation-Token"])
    assert handshake["headers"]["Content-Length"] == "0"
    assert "Content-Type" not in handshake["headers"]
    acc, ext = CREDS.rc_account_id, CREDS.rc_extension_id
    assert record["status"] == "Active"
    assert record["eventFilters"] == [
        f"/restapi/v1.0/account/{acc}/extension/{ext}/message-store/instant?type=SMS"
    ]
    assert record["deliveryMode"] == {
        "transportType": "WebHook",
        "address": address,
        "encryption": False,
    }
    assert 3599 <= record["expiresIn"] <= 3600
    assert RC_TIME.match(record["creationTime"]) and RC_TIME.match(record["expirationTime"])
    assert record["uri"].endswith(f"{SUBSCRIPTION}/{record['id']}")

    answer = await inbound(http, sim, provider="ringcentral")
    [hit] = received(gateway, "ringcentral")
    assert hit["url"] == address
    assert hit["verification"] == "vt-123"
    assert hit["json"]["subscriptionId"] == record["id"] == answer["subscription_id"]


async def test_every_matching_subscription_gets_the_notification(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    hooks = f"{base_url(gateway)}/hooks/echo"
    _, first = await subscribe(http, sim, hooks + "?n=1")
    _, second = await subscribe(http, sim, hooks + "?n=2")
    _, presence = await rc_call(
        http,
        sim,
        "POST",
        SUBSCRIPTION,
        {
            "eventFilters": ["/restapi/v1.0/account/~/extension/~/presence"],
            "deliveryMode": {"transportType": "WebHook", "address": hooks + "?n=3"},
        },
    )
    answer = await inbound(http, sim, provider="ringcentral")
    hits = received(gateway, "ringcentral")
    assert sorted(hit["url"][-1] for hit in hits) == ["1", "2"]
    assert all(hit["verification"] is None for hit in hits)  # none was configured
    assert answer["subscription_id"] == second["id"]  # the newest one
    assert [d["subscription_id"] for d in answer["deliveries"]] == [second["id"], first["id"]]
    assert presence["id"] not in {d["subscription_id"] for d in answer["deliveries"]}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("silent", "missing"),
        ("wrong", "does not match"),
        ("status", "HTTP 202"),
        ("big-body", "at most 1024"),
        ("big-header", "at most 1024"),
        ("missing", "HTTP 404"),
    ],
)
async def test_failed_handshake_is_sub_525(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer, kind: str, reason: str
) -> None:
    status, body = await subscribe(http, sim, f"{base_url(gateway)}/hooks/{kind}")
    assert status == 400
    assert body["errorCode"] == "SUB-525"
    assert body["message"] == "WebHook server response is invalid"
    assert body["errors"][0]["errorCode"] == "SUB-525"
    assert reason in body["errors"][0]["message"]
    assert body["errors"][0]["parameterName"] == "deliveryMode.address"
    assert len(received(gateway, "handshake")) == 1
    _, listing = await rc_call(http, sim, "GET", SUBSCRIPTION)
    assert listing["records"] == []


async def test_handshake_answered_too_late(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    started = time.monotonic()
    status, body = await subscribe(http, sim, f"{base_url(gateway)}/hooks/slow")
    elapsed = time.monotonic() - started
    gateway.app[RELEASE].set()
    assert status == 400 and body["errorCode"] == "SUB-525"
    assert "within 3 s" in body["errors"][0]["message"]
    assert 2.9 <= elapsed < 3.5


async def test_unreachable_address_is_sub_525(http: aiohttp.ClientSession, sim: TestServer) -> None:
    status, body = await subscribe(http, sim, f"http://127.0.0.1:{free_port()}/hook")
    assert (status, body["errorCode"]) == (400, "SUB-525")
    assert "not reachable" in body["errors"][0]["message"]


async def test_subscription_lifecycle_and_expiry(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    auth = await rc_bearer(http, sim)
    address = f"{base_url(gateway)}/hooks/echo"
    status, created = await subscribe(http, sim, address, expiresIn=1)
    assert status == 200 and created["expiresIn"] == 1
    one = f"{SUBSCRIPTION}/{created['id']}"

    _, listing = await rc_call(http, sim, "GET", SUBSCRIPTION, auth=auth)
    assert [r["id"] for r in listing["records"]] == [created["id"]]
    assert listing["uri"].endswith(SUBSCRIPTION)

    await asyncio.sleep(1.1)
    status, expired = await rc_call(http, sim, "GET", one, auth=auth)
    assert (status, expired["status"], expired["expiresIn"]) == (200, "Expired", 0)
    # An expired subscription gets nothing: the notification falls back to the gateway URL.
    await inbound(http, sim, provider="ringcentral")
    assert [hit["url"] for hit in received(gateway, "ringcentral")] == [
        f"{base_url(gateway)}/webhooks/ringcentral"
    ]

    status, renewed = await rc_call(http, sim, "POST", one + "/renew", auth=auth)
    assert (status, renewed["status"], renewed["expiresIn"]) == (200, "Active", 1)
    status, updated = await rc_call(http, sim, "PUT", one, {"expiresIn": 7200}, auth=auth)
    assert (status, updated["status"], updated["expiresIn"]) == (200, "Active", 7200)
    assert updated["expirationTime"] > renewed["expirationTime"]
    status, again = await rc_call(http, sim, "POST", one + "/renew", auth=auth)
    assert again["expiresIn"] == 7200  # a renewal keeps the lifetime last asked for
    assert len(received(gateway, "handshake")) == 1  # the address did not change

    status, _ = await rc_call(http, sim, "DELETE", one, auth=auth)
    assert status == 204
    status, gone = await rc_call(http, sim, "GET", one, auth=auth)
    assert (status, gone["errorCode"]) == (404, "CMN-102")
    status, gone = await rc_call(http, sim, "POST", one + "/renew", auth=auth)
    assert status == 404
    _, listing = await rc_call(http, sim, "GET", SUBSCRIPTION, auth=auth)
    assert listing["records"] == []


async def test_update_with_a_new_address_is_validated_again(
    http: aiohttp.ClientSession, sim: TestServer, gateway: TestServer
) -> None:
    auth = await rc_bearer(http, sim)
    hooks = f"{base_url(gateway)}/hooks"
    _, created = await subscribe(http, sim, f"{hooks}/echo")
    one = f"{SUBSCRIPTION}/{created['id']}"
    silent = {"deliveryMode": {"transportType": "WebHook", "address": f"{hooks}/silent"}}
    status, body = await rc_call(http, sim, "PUT", one, silent, auth=auth)
    assert (status, body["errorCode"]) == (400, "SUB-525")
    _, unchanged = await rc_call(http, sim, "GET", one, auth=auth)
    assert unchanged["deliveryMode"]["address"] == f"{hooks}/echo"
    moved = {"deliveryMode": {"transportType": "WebHook", "address": f"{hooks}/echo?moved=1"}}
    status, body = await rc_call(http, sim, "PUT", one, moved, auth=auth)
    assert status == 200 and body["deliveryMode"]["address"].endswith("?moved=1")
    assert len(received(gateway, "handshake")) == 3


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"deliveryMode": {"transportType": "WebHook", "address": "http://h/"}}, "eventFilters"),
        ({"eventFilters": [INSTANT_SMS]}, "deliveryMode"),
        (
            {"eventFilters": [INSTANT_SMS], "deliveryMode": {"transportType": "PubNub"}},
            "deliveryMode.transportType",
        ),
        (
            {"eventFilters": [INSTANT_SMS], "deliveryMode": {"transportType": "WebHook"}},
            "deliveryMode.address",
        ),
        (
            {
                "eventFilters": [INSTANT_SMS],
                "deliveryMode": {"transportType": "WebHook", "address": "http://h/"},
                "expiresIn": 0,
            },
            "expiresIn",
        ),
    ],
)
async def test_subscription_validation(
    http: aiohttp.ClientSession, sim: TestServer, body: dict[str, Any], parameter: str
) -> None:
    status, answer = await rc_call(http, sim, "POST", SUBSCRIPTION, body)
    assert (status, answer["errorCode"]) == (400, "CMN-101")
    assert answer["errors"][0]["parameterName"] == parameter


async def test_subscription_routes_need_a_bearer(
    http: aiohttp.ClientSession, sim: TestServer
) -> None:
    for method, path in [
        ("GET", SUBSCRIPTION),
        ("POST", SUBSCRIPTION),
        ("GET", SUBSCRIPTION + "/x"),
    ]:
        status, body = await rc_call(http, sim, method, path, {}, auth={})
        assert (status, body["errorCode"]) == (401, "AGW-401")


async def test_subscribe_through_the_official_sdk(sim: TestServer, gateway: TestServer) -> None:
    def with_sdk() -> dict[str, Any]:
        platform = SDK(CREDS.rc_client_id, CREDS.rc_client_secret, base_url(sim)).platform()
        platform.login(jwt=CREDS.rc_jwt)
        body = {
            "eventFilters": [INSTANT_SMS],
            "deliveryMode": {
                "transportType": "WebHook",
                "address": f"{base_url(gateway)}/hooks/echo",
                "verificationToken": "sdk-token",
            },
            "expiresIn": 600,
        }
        created: dict[str, Any] = platform.post(SUBSCRIPTION, body).json_dict()
        listed: dict[str, Any] = platform.get(SUBSCRIPTION).json_dict()
        platform.delete(f"{SUBSCRIPTION}/{created['id']}")
        return {"created": created, "listed": listed}

    result = await asyncio.to_thread(with_sdk)
    assert result["created"]["status"] == "Active"
    assert [r["id"] for r in result["listed"]["records"]] == [result["created"]["id"]]
    assert len(received(gateway, "handshake")) == 1
