"""The official, unmodified RingCentral and Twilio SDKs, pointed at a running gateway.

Three processes: this test run (the app with its SDK), ``stopgate serve`` and ``stopgate
carrier-sim`` (see conftest). What an app changes to adopt Stopgate is its SDK's base URL and
nothing else; these tests check that everything the SDKs do still works through the gateway
(OAuth, sends, multipart, batches), that a blocked send surfaces as the SDK's own exception with
the carrier's error code, and that a blocked send never reaches the carrier.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
import requests
from ringcentral import SDK
from ringcentral.http.api_exception import ApiException
from ringcentral.platform.platform import Platform
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from tests.e2e.conftest import BUSINESS, HTTP_TIMEOUT, OTHER_BUSINESS, SIM, Stack
from tests.support.processes import ServiceProcess
from tests.support.sdks import RebasingHttpClient, close_twilio

pytestmark = pytest.mark.e2e

RC_SMS = "/restapi/v1.0/account/~/extension/~/sms"
RC_MMS = "/restapi/v1.0/account/~/extension/~/mms"
RC_BATCH = "/restapi/v1.0/account/~/a2p-sms/batches"
TOKEN_PATH = "/restapi/oauth/token"
SERVICE = "MG" + "5c" * 16
DECISION = "X-Stopgate-Decision"
TWILIO_OPT_OUT = {
    "code": 21610,
    "message": "Attempt to send to unsubscribed recipient",
    "more_info": "https://www.twilio.com/docs/errors/21610",
    "status": 400,
}


# ---- helpers -----------------------------------------------------------------------------


def rc_sdk(stack: Stack, secret: str = SIM.rc_client_secret) -> SDK:
    """The SDK as an app builds it, with the gateway's URL where RingCentral's would be."""
    return SDK(SIM.rc_client_id, secret, stack.gateway_url)


def rc_platform(stack: Stack) -> Platform:
    platform = rc_sdk(stack).platform()
    platform.login(jwt=SIM.rc_jwt)
    return platform


def sms(to: str, text: str = "hello", from_: str = BUSINESS) -> dict[str, Any]:
    return {"from": {"phoneNumber": from_}, "to": [{"phoneNumber": to}], "text": text}


def rc_error(excinfo: pytest.ExceptionInfo[ApiException]) -> tuple[requests.Response, Any]:
    """The raw ``requests`` response behind the SDK's exception, and its parsed body."""
    response: requests.Response = excinfo.value.api_response().response()
    return response, response.json()


def assert_rc_opt_out(excinfo: pytest.ExceptionInfo[ApiException], recipient: str) -> None:
    response, body = rc_error(excinfo)
    assert response.status_code == 400
    assert body["errorCode"] == "SMS-RC-413"
    assert body["message"] == "The destination subscriber opted out"
    [detail] = body["errors"]
    assert (detail["errorCode"], detail["parameterName"]) == ("SMS-RC-413", "to")
    assert recipient in detail["message"]
    assert response.headers[DECISION] == "blocked; reason=opt-out"
    # The SDK's own message is the carrier's text: what an app's error log will show.
    assert "opted out" in str(excinfo.value)


def national(e164: str) -> str:
    """``+16505550123`` as people write it in the US: ``(650) 555-0123``."""
    return phonenumbers.format_number(
        phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL
    )


@pytest.fixture
def twilio(stack: Stack) -> Iterator[Client]:
    # environment={} keeps TWILIO_* variables (a region or edge would rewrite the host) out.
    client = Client(SIM.twilio_account_sid, SIM.twilio_auth_token, environment={})
    client.api.base_url = stack.gateway_url
    yield client
    close_twilio(client)


# ---- RingCentral SDK ---------------------------------------------------------------------


def test_rc_jwt_login_and_allowed_send(stack: Stack, customer: str) -> None:
    platform = rc_sdk(stack).platform()
    token = platform.login(jwt=SIM.rc_jwt).json_dict()
    assert token["owner_id"] == SIM.rc_extension_id
    assert platform.logged_in()

    reply = platform.post(RC_SMS, sms(customer, "Your order shipped"))

    assert reply.response().status_code == 200
    assert reply.response().headers[DECISION] == "allowed"
    record = reply.json_dict()
    assert isinstance(record["id"], int)
    assert record["messageStatus"] == "Queued"
    assert record["to"] == [{"phoneNumber": customer}]
    assert reply.json().direction == "Outbound"  # the SDK's attribute view parses it too
    [entry] = stack.delivered(customer)
    assert (entry["provider"], entry["from"], entry["text"]) == (
        "ringcentral",
        BUSINESS,
        "Your order shipped",
    )
    assert entry["message_id"] == str(record["id"])
    # A read is forwarded unchanged, with the SDK's bearer token.
    fetched = platform.get(f"/restapi/v1.0/account/~/extension/~/message-store/{record['id']}")
    assert fetched.json_dict()["messageStatus"] == "Delivered"


def test_rc_password_login_and_refresh(stack: Stack, customer: str) -> None:
    platform = rc_sdk(stack).platform()
    platform.login(SIM.rc_username, SIM.rc_extension_number, SIM.rc_password)
    assert platform.post(RC_SMS, sms(customer, "before refresh")).json_dict()["id"]
    old = platform.auth().data()

    platform.refresh()

    new = platform.auth().data()
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert platform.post(RC_SMS, sms(customer, "after refresh")).json_dict()["id"]
    assert [m["text"] for m in stack.delivered(customer)] == ["before refresh", "after refresh"]
    # The carrier revoked the old pair on refresh; the gateway relays its verdict unchanged.
    stale = requests.get(
        f"{stack.gateway_url}/restapi/v1.0/account/~",
        headers={"Authorization": f"bearer {old['access_token']}"},
        timeout=HTTP_TIMEOUT,
    )
    assert stale.status_code == 401
    assert stale.json()["errorCode"] == "TokenInvalid"


def test_rc_opt_out_written_through_the_consent_api_blocks_the_next_send(
    stack: Stack, customer: str
) -> None:
    platform = rc_platform(stack)
    assert platform.post(RC_SMS, sms(customer, "first")).json_dict()["messageStatus"] == "Queued"

    stack.opt_out(customer)
    with pytest.raises(ApiException) as excinfo:
        platform.post(RC_SMS, sms(customer, "second"))

    assert_rc_opt_out(excinfo, customer)
    assert [m["text"] for m in stack.delivered(customer)] == ["first"]


def test_rc_wrong_client_secret_gets_the_carriers_own_answer(stack: Stack) -> None:
    with pytest.raises(ApiException) as through_gateway:
        rc_sdk(stack, "wrong-secret").platform().login(jwt=SIM.rc_jwt)
    direct = requests.post(
        f"{stack.sim_url}{TOKEN_PATH}",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": SIM.rc_jwt},
        auth=(SIM.rc_client_id, "wrong-secret"),
        timeout=HTTP_TIMEOUT,
    )

    relayed, body = rc_error(through_gateway)
    assert direct.status_code == 401
    assert relayed.status_code == direct.status_code
    assert relayed.content == direct.content
    assert body["error"] == "invalid_client"
    for header in ("Content-Type", "Cache-Control", "Pragma"):
        assert relayed.headers[header] == direct.headers[header]
    assert DECISION not in relayed.headers  # forwarded, not a send: no decision was made


@pytest.mark.parametrize("mixed", [False, True], ids=["form-data", "mixed"])
def test_rc_multipart_mms_allowed_and_blocked(
    stack: Stack, new_customer: Callable[[], str], mixed: bool
) -> None:
    allowed, blocked = new_customer(), new_customer()
    stack.opt_out(blocked)
    sdk = rc_sdk(stack)
    platform = sdk.platform()
    platform.login(jwt=SIM.rc_jwt)
    # Over 512 KB: the gateway streams such a body to the carrier instead of one write.
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4000

    def mms(to: str) -> Any:
        builder = sdk.create_multipart_builder().set_multipart_mixed(mixed)
        builder.set_body(sms(to, "look"))
        builder.add(("pic.png", image, "image/png"))
        return builder.request(RC_MMS)

    record = platform.send_request(mms(allowed)).json_dict()
    assert record["type"] == "MMS"
    attachment = record["attachments"][-1]
    assert (attachment["contentType"], attachment["size"]) == ("image/png", len(image))
    [entry] = stack.delivered(allowed)
    assert (entry["text"], entry["media"]) == ("look", ["pic.png"])

    with pytest.raises(ApiException) as excinfo:
        platform.send_request(mms(blocked))
    assert_rc_opt_out(excinfo, blocked)
    assert stack.delivered(blocked) == []


def test_rc_a2p_batch_drops_the_blocked_recipient_at_its_index(
    stack: Stack, new_customer: Callable[[], str]
) -> None:
    first, blocked, refused_by_carrier, last = (new_customer() for _ in range(4))
    stack.opt_out(blocked)
    platform = rc_platform(stack)

    reply = platform.post(
        RC_BATCH,
        {
            "from": BUSINESS,
            "text": "Sale today",
            "messages": [
                {"to": [first]},
                {"to": [blocked]},
                # A form Stopgate canonicalises but the carrier refuses: its rejection comes
                # back at index 1 of the forwarded batch and must be mapped back to index 2.
                {"to": [f"tel:{refused_by_carrier}"]},
                {"to": [last], "text": "VIP sale today"},
            ],
        },
    )

    assert reply.response().headers[DECISION] == "partial; reason=opt-out; dropped=1"
    batch = reply.json_dict()
    assert batch["batchSize"] == 4
    assert [(r["index"], r["to"], r["errorCode"]) for r in batch["rejected"]] == [
        (1, [blocked], "SMS-RC-413"),
        (2, [f"tel:{refused_by_carrier}"], "SMS-RC-410"),
    ]
    assert all(r["description"] for r in batch["rejected"])
    assert [(m["text"], m["api"]) for m in stack.delivered(first)] == [("Sale today", "a2p-batch")]
    assert [m["text"] for m in stack.delivered(last)] == ["VIP sale today"]
    assert stack.delivered(blocked) == []
    later = platform.get(f"{RC_BATCH}/{batch['id']}").json_dict()
    assert later["status"] == "Completed"


def test_rc_a2p_batch_with_every_recipient_blocked_is_refused(stack: Stack, customer: str) -> None:
    stack.opt_out(customer)
    platform = rc_platform(stack)
    with pytest.raises(ApiException) as excinfo:
        platform.post(RC_BATCH, {"from": BUSINESS, "text": "x", "messages": [{"to": [customer]}]})
    response, body = rc_error(excinfo)
    assert (response.status_code, body["errorCode"]) == (400, "SMS-RC-413")
    assert stack.delivered(customer) == []


# ---- Twilio SDK, sync --------------------------------------------------------------------


def test_twilio_allowed_send_returns_the_message(
    stack: Stack, twilio: Client, customer: str
) -> None:
    message = twilio.messages.create(to=customer, from_=BUSINESS, body="Your code is 1234")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.to, message.from_, message.body) == (customer, BUSINESS, "Your code is 1234")
    assert message.status == "queued"
    assert message.date_created is not None  # the SDK parsed the carrier's RFC 2822 date
    [entry] = stack.delivered(customer)
    assert (entry["provider"], entry["message_id"]) == ("twilio", message.sid)
    assert twilio.messages(message.sid).fetch().status == "delivered"  # forwarded read


def test_twilio_opt_out_raises_21610(stack: Stack, twilio: Client, customer: str) -> None:
    twilio.messages.create(to=customer, from_=BUSINESS, body="first")
    stack.opt_out(customer)

    with pytest.raises(TwilioRestException) as excinfo:
        twilio.messages.create(to=customer, from_=BUSINESS, body="second")

    error = excinfo.value
    assert (error.status, error.code) == (400, 21610)
    # The SDK prefixes the carrier's message ("Unable to create record: …").
    assert error.msg.endswith(TWILIO_OPT_OUT["message"])
    assert error.method == "POST"
    assert [m["text"] for m in stack.delivered(customer)] == ["first"]
    # Another business number may still write to this customer: the opt-out is per pair.
    assert twilio.messages.create(to=customer, from_=OTHER_BUSINESS, body="other").sid


def test_twilio_national_format_on_send_is_blocked_by_an_e164_opt_out(
    stack: Stack, twilio: Client, customer: str
) -> None:
    stack.opt_out(customer)
    written = national(customer)
    assert written.startswith("(650) 555-")

    with pytest.raises(TwilioRestException) as excinfo:
        twilio.messages.create(to=written, from_=BUSINESS, body="x")

    assert (excinfo.value.status, excinfo.value.code) == (400, 21610)
    assert stack.delivered(customer) == []
    assert stack.delivered(written) == []


def test_twilio_wrong_auth_token_gets_the_carriers_401(stack: Stack, customer: str) -> None:
    stack.opt_out(customer)  # a refused caller learns nothing about consent
    client = Client(SIM.twilio_account_sid, "0" * 32, environment={})
    client.api.base_url = stack.gateway_url
    try:
        with pytest.raises(TwilioRestException) as excinfo:
            client.messages.create(to=customer, from_=BUSINESS, body="nope")
    finally:
        close_twilio(client)
    direct = requests.post(
        f"{stack.sim_url}/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json",
        data={"To": customer, "From": BUSINESS, "Body": "nope"},
        auth=(SIM.twilio_account_sid, "0" * 32),
        timeout=HTTP_TIMEOUT,
    )

    assert (excinfo.value.status, excinfo.value.code) == (401, 20003)
    assert direct.status_code == 401
    assert direct.json()["message"] == "Authenticate"
    assert excinfo.value.msg == f"Unable to create record: {direct.json()['message']}"
    assert stack.delivered(customer) == []


def test_twilio_custom_rebasing_http_client(stack: Stack, new_customer: Callable[[], str]) -> None:
    allowed, blocked = new_customer(), new_customer()
    stack.opt_out(blocked)
    client = Client(
        SIM.twilio_account_sid,
        SIM.twilio_auth_token,
        http_client=RebasingHttpClient(stack.gateway_url),
        environment={},
    )
    try:
        message = client.messages.create(to=allowed, from_=BUSINESS, body="rebased")
        with pytest.raises(TwilioRestException) as excinfo:
            client.messages.create(to=blocked, from_=BUSINESS, body="rebased")
    finally:
        close_twilio(client)

    assert message.sid.startswith("SM")
    assert (excinfo.value.status, excinfo.value.code) == (400, 21610)
    assert [m["message_id"] for m in stack.delivered(allowed)] == [message.sid]
    assert stack.delivered(blocked) == []


def test_twilio_api_key_credentials_are_checked_with_the_carrier(
    stack: Stack, new_customer: Callable[[], str]
) -> None:
    """``SK…`` keys are not the configured auth token: the gateway asks the carrier first."""
    allowed, blocked = new_customer(), new_customer()
    stack.opt_out(blocked)
    client = Client(
        SIM.twilio_api_key_sid,
        SIM.twilio_api_key_secret,
        account_sid=SIM.twilio_account_sid,
        environment={},
    )
    client.api.base_url = stack.gateway_url
    try:
        message = client.messages.create(to=allowed, from_=BUSINESS, body="keyed")
        with pytest.raises(TwilioRestException) as excinfo:
            client.messages.create(to=blocked, from_=BUSINESS, body="keyed")
    finally:
        close_twilio(client)

    assert message.sid.startswith("SM")
    assert (excinfo.value.status, excinfo.value.code) == (400, 21610)
    assert [m["message_id"] for m in stack.delivered(allowed)] == [message.sid]
    assert stack.delivered(blocked) == []


def test_twilio_messaging_service_send(
    stack: Stack, twilio: Client, new_customer: Callable[[], str]
) -> None:
    allowed, blocked = new_customer(), new_customer()
    message = twilio.messages.create(to=allowed, messaging_service_sid=SERVICE, body="svc")

    assert message.messaging_service_sid == SERVICE
    assert message.from_ is None
    [entry] = stack.delivered(allowed)
    assert (entry["from"], entry["messaging_service_sid"]) == (SERVICE, SERVICE)

    # Twilio scopes an opt-out to the whole service: the service is the key that is checked.
    stack.opt_out(blocked, from_=SERVICE)
    with pytest.raises(TwilioRestException) as excinfo:
        twilio.messages.create(to=blocked, messaging_service_sid=SERVICE, body="svc")
    assert (excinfo.value.status, excinfo.value.code) == (400, 21610)
    assert stack.delivered(blocked) == []


# ---- Twilio SDK, async -------------------------------------------------------------------


async def test_twilio_async_client_allowed_and_blocked(
    stack: Stack, new_customer: Callable[[], str]
) -> None:
    allowed, blocked = new_customer(), new_customer()
    stack.opt_out(blocked)  # a quick local request; blocking the loop briefly is harmless here
    async with AsyncTwilioHttpClient() as http:
        client = Client(
            SIM.twilio_account_sid, SIM.twilio_auth_token, http_client=http, environment={}
        )
        client.api.base_url = stack.gateway_url
        message = await client.messages.create_async(to=allowed, from_=BUSINESS, body="async")
        with pytest.raises(TwilioRestException) as excinfo:
            await client.messages.create_async(to=blocked, from_=BUSINESS, body="async")

    assert message.sid.startswith("SM")
    assert message.body == "async"
    assert (excinfo.value.status, excinfo.value.code) == (400, 21610)
    assert excinfo.value.msg.endswith(TWILIO_OPT_OUT["message"])
    assert [m["message_id"] for m in stack.delivered(allowed)] == [message.sid]
    assert stack.delivered(blocked) == []


# ---- processes ---------------------------------------------------------------------------


def test_opt_out_survives_a_gateway_restart(
    stack: Stack,
    start_gateway: Callable[..., ServiceProcess],
    tmp_path: Path,
    customer: str,
) -> None:
    store = tmp_path / "restart.db"
    first = start_gateway("gateway-before-restart", store)
    Stack(stack.sim, first).opt_out(customer)
    assert first.stop() == 0  # SIGTERM: a clean exit, not a kill
    assert not first.killed

    second = start_gateway("gateway-after-restart", store)
    client = Client(SIM.twilio_account_sid, SIM.twilio_auth_token, environment={})
    client.api.base_url = second.url
    try:
        with pytest.raises(TwilioRestException) as excinfo:
            client.messages.create(to=customer, from_=BUSINESS, body="after restart")
    finally:
        close_twilio(client)

    assert (excinfo.value.status, excinfo.value.code) == (400, 21610)
    assert stack.delivered(customer) == []


# ---- the wire, without an SDK in between -------------------------------------------------


def test_blocked_refusals_are_exactly_the_contract_shape(stack: Stack, customer: str) -> None:
    """DESIGN §4.3 byte for byte: what the SDKs above parsed is what was specified."""
    stack.opt_out(customer)
    twilio_reply = requests.post(
        f"{stack.gateway_url}/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json",
        data={"To": customer, "From": BUSINESS, "Body": "x"},
        auth=(SIM.twilio_account_sid, SIM.twilio_auth_token),
        timeout=HTTP_TIMEOUT,
    )
    assert twilio_reply.status_code == 400
    assert twilio_reply.json() == TWILIO_OPT_OUT
    assert twilio_reply.headers[DECISION] == "blocked; reason=opt-out"
    assert twilio_reply.headers["Content-Type"].startswith("application/json")

    token = rc_platform(stack).auth().access_token()
    rc_reply = requests.post(
        f"{stack.gateway_url}{RC_SMS}",
        data=json.dumps(sms(customer)),
        headers={"Authorization": f"bearer {token}", "Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT,
    )
    assert rc_reply.status_code == 400
    assert rc_reply.json() == {
        "errorCode": "SMS-RC-413",
        "message": "The destination subscriber opted out",
        "errors": [
            {
                "errorCode": "SMS-RC-413",
                "message": f"The destination subscriber opted out: {customer}",
                "parameterName": "to",
            }
        ],
    }
    assert rc_reply.headers[DECISION] == "blocked; reason=opt-out"
    assert stack.delivered(customer) == []
