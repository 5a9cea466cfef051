"""The carrier simulator, driven by the official RingCentral and Twilio SDKs.

If the SDKs accept the simulator's answers, the gateway tests built on it exercise the same
wire formats that real apps see. Fault modes are observed with a plain aiohttp client.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
from ringcentral import SDK
from ringcentral.http.api_exception import ApiException
from ringcentral.platform.platform import Platform
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gateway.carriersim import SIM_STATE, SimCredentials, create_sim_app
from gateway.carriersim.twilio_api import count_segments
from tests.support.sdks import RebasingHttpClient, close_twilio
from tests.support.servers import ServerThread, free_port, wait_for_http

CREDS = SimCredentials()
BUSINESS = "+16505550100"
CUSTOMER = "+16505550111"
OTHER_CUSTOMER = "+16505550122"
SMS_PATH = "/restapi/v1.0/account/~/extension/~/sms"
RC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[ServerThread]:
    with ServerThread(create_sim_app) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_sim(sim: ServerThread) -> None:
    requests.delete(f"{sim.url}/sim/messages", timeout=5)
    requests.post(f"{sim.url}/sim/faults", json={"mode": "none"}, timeout=5)


def delivered(sim: ServerThread) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = requests.get(f"{sim.url}/sim/messages", timeout=5).json()[
        "messages"
    ]
    return messages


def rc_platform(sim: ServerThread, secret: str = CREDS.rc_client_secret) -> Platform:
    return SDK(CREDS.rc_client_id, secret, sim.url).platform()


def rc_logged_in(sim: ServerThread) -> Platform:
    platform = rc_platform(sim)
    platform.login(jwt=CREDS.rc_jwt)
    return platform


def rc_token(sim: ServerThread, **extra: str) -> dict[str, Any]:
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": CREDS.rc_jwt}
    form.update(extra)
    reply = requests.post(
        f"{sim.url}/restapi/oauth/token",
        data=form,
        auth=(CREDS.rc_client_id, CREDS.rc_client_secret),
        timeout=5,
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def sms_body(text: str = "hello", to: str = CUSTOMER) -> dict[str, Any]:
    return {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": to}], "text": text}


def rc_error_of(excinfo: pytest.ExceptionInfo[ApiException]) -> tuple[int, dict[str, Any]]:
    response = excinfo.value.api_response().response()
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.fixture
def twilio(sim: ServerThread) -> Iterator[Client]:
    # environment={} keeps TWILIO_* variables (a region or edge would rewrite the host) out.
    client = Client(CREDS.twilio_account_sid, CREDS.twilio_auth_token, environment={})
    client.api.base_url = sim.url
    yield client
    close_twilio(client)


# ---- RingCentral SDK ---------------------------------------------------------------------


def test_rc_jwt_login_returns_what_the_sdk_needs(sim: ServerThread) -> None:
    platform = rc_platform(sim)
    token = platform.login(jwt=CREDS.rc_jwt).json_dict()

    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    assert token["refresh_token_expires_in"] == 604800
    assert token["owner_id"] == CREDS.rc_extension_id
    assert {"access_token", "refresh_token", "scope", "endpoint_id"} <= token.keys()
    assert platform.auth().access_token_valid()
    assert platform.logged_in()


def test_rc_sms_send_answers_a_message_record(sim: ServerThread) -> None:
    platform = rc_logged_in(sim)
    reply = platform.post(SMS_PATH, sms_body("Your code is 1234"))
    record = reply.json_dict()

    assert reply.response().status_code == 200
    assert isinstance(record["id"], int)
    assert record["uri"].endswith(
        f"/account/{CREDS.rc_account_id}/extension/{CREDS.rc_extension_id}"
        f"/message-store/{record['id']}"
    )
    assert record["type"] == "SMS"
    assert record["direction"] == "Outbound"
    assert record["messageStatus"] == "Queued"
    assert record["from"] == {"phoneNumber": BUSINESS}
    assert record["to"] == [{"phoneNumber": CUSTOMER}]
    assert record["subject"] == "Your code is 1234"
    assert RC_TIME.match(record["creationTime"])
    assert RC_TIME.match(record["lastModifiedTime"])
    assert isinstance(record["conversationId"], int)
    assert reply.json().direction == "Outbound"  # the SDK's attribute view parses it too

    [entry] = delivered(sim)
    assert entry["provider"] == "ringcentral"
    assert (entry["from"], entry["to"], entry["text"]) == (BUSINESS, CUSTOMER, "Your code is 1234")
    assert entry["message_id"] == str(record["id"])

    fetched = platform.get(f"/restapi/v1.0/account/~/extension/~/message-store/{record['id']}")
    assert fetched.json_dict()["messageStatus"] == "Delivered"


def test_rc_paths_without_prefix_get_restapi_v1_from_the_sdk(sim: ServerThread) -> None:
    platform = rc_logged_in(sim)
    record = platform.post("/account/~/extension/~/sms", sms_body()).json_dict()
    assert record["type"] == "SMS"


def test_rc_one_entry_per_recipient(sim: ServerThread) -> None:
    body = sms_body()
    body["to"] = [{"phoneNumber": CUSTOMER}, {"phoneNumber": OTHER_CUSTOMER}]
    record = rc_logged_in(sim).post(SMS_PATH, body).json_dict()

    assert [entry["to"] for entry in delivered(sim)] == [CUSTOMER, OTHER_CUSTOMER]
    assert len(record["to"]) == 2


def test_rc_password_login_warning_matches_the_project_filter(sim: ServerThread) -> None:
    """The SDK warns on password logins; pyproject's filter must silence exactly that.

    The first login runs under the project's ``filterwarnings = error`` configuration: if
    ``ignore:.*password.*:UserWarning:ringcentral.*`` did not match, it would raise here.
    """
    platform = rc_platform(sim)
    platform.login(CREDS.rc_username, CREDS.rc_extension_number, CREDS.rc_password)
    assert platform.auth().access_token()

    with pytest.warns(UserWarning) as seen:
        rc_platform(sim).login(username=CREDS.rc_username, extension="", password=CREDS.rc_password)
    [warning] = seen.list
    assert warning.category is UserWarning
    assert re.match(r".*password.*", str(warning.message), re.IGNORECASE)
    # warnings.warn() without stacklevel: the module is the SDK's own platform module.
    assert warning.filename.replace("\\", "/").endswith("ringcentral/platform/platform.py")


def test_rc_refresh_rotates_the_token_pair(sim: ServerThread) -> None:
    platform = rc_logged_in(sim)
    old = platform.auth().data()
    platform.refresh()
    new = platform.auth().data()

    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert platform.get("/restapi/v1.0/account/~/extension/~").json_dict()["id"] == int(
        CREDS.rc_extension_id
    )

    stale = requests.get(
        f"{sim.url}/restapi/v1.0/account/~",
        headers={"Authorization": f"Bearer {old['access_token']}"},
        timeout=5,
    )
    assert stale.status_code == 401
    assert stale.json()["errorCode"] == "TokenInvalid"
    replay = requests.post(
        f"{sim.url}/restapi/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": old["refresh_token"]},
        auth=(CREDS.rc_client_id, CREDS.rc_client_secret),
        timeout=5,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_rc_logout_revokes(sim: ServerThread) -> None:
    platform = rc_logged_in(sim)
    token = platform.auth().access_token()
    platform.logout()
    after = requests.get(
        f"{sim.url}/restapi/v1.0/account/~",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert after.status_code == 401


@pytest.mark.parametrize(
    ("secret", "login", "status", "error"),
    [
        ("wrong-secret", {"jwt": CREDS.rc_jwt}, 401, "invalid_client"),
        (CREDS.rc_client_secret, {"jwt": "not-the-jwt"}, 400, "invalid_grant"),
        (
            CREDS.rc_client_secret,
            {"username": CREDS.rc_username, "password": "wrong"},
            400,
            "invalid_grant",
        ),
        (
            CREDS.rc_client_secret,
            {"username": CREDS.rc_username, "password": CREDS.rc_password, "extension": "999"},
            400,
            "invalid_grant",
        ),
    ],
    ids=["wrong-secret", "wrong-jwt", "wrong-password", "wrong-extension"],
)
def test_rc_login_failures_raise_api_exception_with_upstream_status(
    sim: ServerThread, secret: str, login: dict[str, str], status: int, error: str
) -> None:
    with pytest.raises(ApiException) as excinfo:
        rc_platform(sim, secret).login(**login)
    got_status, body = rc_error_of(excinfo)
    assert got_status == status
    assert body["error"] == error
    assert body["error_description"]
    assert body["errors"][0]["errorCode"].startswith("OAU-")
    assert f"HTTP {status}" in str(excinfo.value)


def test_rc_login_accepts_phone_number_variants(sim: ServerThread) -> None:
    platform = rc_platform(sim)
    platform.login(username="1 (650) 555-0100", password=CREDS.rc_password)
    assert platform.auth().access_token()


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"to": [{"phoneNumber": CUSTOMER}], "text": "hi"}, "from.phoneNumber"),
        ({"from": {"phoneNumber": BUSINESS}, "text": "hi"}, "to"),
        ({"from": {"phoneNumber": BUSINESS}, "to": [], "text": "hi"}, "to"),
        ({"from": {"phoneNumber": BUSINESS}, "to": [{}], "text": "hi"}, "to.phoneNumber"),
        ({"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}]}, "text"),
        (sms_body(to="not a number"), "to.phoneNumber"),
        (sms_body("x" * 1001), "text"),
        # 501 emoji are 1002 UTF-16 units: over the cap although only 501 characters.
        (sms_body("\U0001f600" * 501), "text"),
    ],
    ids=[
        "no-from",
        "no-to",
        "empty-to",
        "to-without-number",
        "no-text",
        "bad-number",
        "text-1001",
        "text-1002-utf16",
    ],
)
def test_rc_sms_validation_errors(sim: ServerThread, body: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        rc_logged_in(sim).post(SMS_PATH, body)
    status, error = rc_error_of(excinfo)
    assert status == 400
    assert error["errorCode"] == "CMN-101"
    assert error["message"]
    assert error["errors"][0]["parameterName"] == parameter
    assert delivered(sim) == []


def test_rc_text_of_exactly_1000_utf16_units_is_accepted(sim: ServerThread) -> None:
    record = rc_logged_in(sim).post(SMS_PATH, sms_body("\U0001f600" * 500)).json_dict()
    assert record["type"] == "SMS"


@pytest.mark.parametrize("path", ["/mms", "/sms"])
def test_rc_multipart_mms_through_the_sdk_builder(sim: ServerThread, path: str) -> None:
    sdk = SDK(CREDS.rc_client_id, CREDS.rc_client_secret, sim.url)
    platform = sdk.platform()
    platform.login(jwt=CREDS.rc_jwt)
    builder = sdk.create_multipart_builder()
    builder.set_body(sms_body("look"))
    builder.add(("pic.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png"))
    request = builder.request("/restapi/v1.0/account/~/extension/~" + path)
    record = platform.send_request(request).json_dict()

    assert record["type"] == "MMS"
    attachment = record["attachments"][-1]
    assert (attachment["type"], attachment["contentType"]) == ("MmsAttachment", "image/png")
    assert attachment["size"] == 108
    [entry] = delivered(sim)
    assert entry["media"] == ["pic.png"]
    assert entry["text"] == "look"


def test_rc_multipart_mixed_is_accepted(sim: ServerThread) -> None:
    sdk = SDK(CREDS.rc_client_id, CREDS.rc_client_secret, sim.url)
    platform = sdk.platform()
    platform.login(jwt=CREDS.rc_jwt)
    builder = sdk.create_multipart_builder().set_multipart_mixed(True)
    builder.set_body(sms_body("mixed")).add(("a.txt", "plain words", "text/plain"))
    request = builder.request("/restapi/v1.0/account/~/extension/~/mms")
    assert request.headers["Content-Type"].startswith("multipart/mixed")
    assert platform.send_request(request).json_dict()["type"] == "MMS"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "AGW-401"),
        ({"Authorization": "Bearer no-such-token"}, 401, "TokenInvalid"),
        ({"Authorization": "Basic abc"}, 401, "TokenInvalid"),
    ],
    ids=["missing", "unknown", "wrong-scheme"],
)
def test_rc_bearer_failures(
    sim: ServerThread, headers: dict[str, str], status: int, code: str
) -> None:
    reply = requests.get(f"{sim.url}/restapi/v1.0/account/~", headers=headers, timeout=5)
    assert reply.status_code == status
    body = reply.json()
    assert body["errorCode"] == code
    assert body["errors"][0]["errorCode"]


@pytest.mark.parametrize("scheme", ["bearer", "Bearer", "BEARER"])
def test_rc_bearer_scheme_is_case_insensitive(sim: ServerThread, scheme: str) -> None:
    token = rc_token(sim)["access_token"]
    reply = requests.get(
        f"{sim.url}/restapi/v1.0/account/~/extension/~",
        headers={"Authorization": f"{scheme} {token}"},
        timeout=5,
    )
    assert reply.status_code == 200
    assert reply.json()["extensionNumber"] == CREDS.rc_extension_number


def test_rc_expired_token_is_refused(sim: ServerThread) -> None:
    token = rc_token(sim)["access_token"]

    async def expire() -> None:
        sim.app[SIM_STATE].rc_by_access[token].access_expires_at = 0.0

    sim.call(expire())
    reply = requests.get(
        f"{sim.url}/restapi/v1.0/account/~", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert reply.status_code == 401
    assert reply.json()["errorCode"] == "TokenExpired"


def test_rc_token_ttl_requests_are_honoured(sim: ServerThread) -> None:
    token = rc_token(sim, access_token_ttl="60", refresh_token_ttl="999999999")
    assert token["expires_in"] == 60
    assert token["refresh_token_expires_in"] == 604800


@pytest.mark.parametrize(
    ("account", "status"),
    [("~", 200), (CREDS.rc_account_id, 200), ("123", 404)],
)
def test_rc_account_lookup(sim: ServerThread, account: str, status: int) -> None:
    platform = rc_logged_in(sim)
    if status == 200:
        body = platform.get(f"/restapi/v1.0/account/{account}").json_dict()
        assert body["id"] == int(CREDS.rc_account_id)
        assert body["status"] == "Confirmed"
        return
    with pytest.raises(ApiException) as excinfo:
        platform.get(f"/restapi/v1.0/account/{account}")
    got_status, body = rc_error_of(excinfo)
    assert (got_status, body["errorCode"]) == (404, "CMN-102")


def test_rc_a2p_batch(sim: ServerThread) -> None:
    platform = rc_logged_in(sim)
    batch = platform.post(
        "/restapi/v1.0/account/~/a2p-sms/batches",
        {
            "from": BUSINESS,
            "text": "Sale today",
            "messages": [
                {"to": [CUSTOMER]},
                {"to": ["bogus"]},
                {"to": [OTHER_CUSTOMER], "text": "VIP sale today"},
            ],
        },
    ).json_dict()

    assert batch["status"] == "Processing"
    assert batch["batchSize"] == 3
    assert batch["processedCount"] == 0
    assert batch["from"] == BUSINESS
    assert RC_TIME.match(batch["creationTime"])
    assert "cost" in batch
    assert batch["rejected"] == [
        {
            "index": 1,
            "to": ["bogus"],
            "errorCode": "SMS-RC-410",
            "description": "The recipient number is invalid",
        }
    ]
    assert [(e["to"], e["text"], e["api"]) for e in delivered(sim)] == [
        (CUSTOMER, "Sale today", "a2p-batch"),
        (OTHER_CUSTOMER, "VIP sale today", "a2p-batch"),
    ]
    later = platform.get(f"/restapi/v1.0/account/~/a2p-sms/batches/{batch['id']}").json_dict()
    assert later["status"] == "Completed"


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"text": "x", "messages": [{"to": [CUSTOMER]}]}, "from"),
        ({"from": BUSINESS, "text": "x"}, "messages"),
        ({"from": BUSINESS, "messages": [{"to": [CUSTOMER]}]}, "messages[0].text"),
        ({"from": BUSINESS, "text": "x", "messages": [{"to": []}]}, "messages[0].to"),
    ],
    ids=["no-from", "no-messages", "no-text", "empty-to"],
)
def test_rc_a2p_batch_validation(sim: ServerThread, body: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        rc_logged_in(sim).post("/restapi/v1.0/account/~/a2p-sms/batches", body)
    status, error = rc_error_of(excinfo)
    assert (status, error["errors"][0]["parameterName"]) == (400, parameter)


# ---- Twilio SDK --------------------------------------------------------------------------


def assert_twilio_message(message: Any, *, body: str) -> None:
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.account_sid == CREDS.twilio_account_sid
    assert message.status == "queued"
    assert message.direction == "outbound-api"
    assert message.api_version == "2010-04-01"
    assert message.body == body
    assert message.date_created is not None  # the SDK parsed the RFC 2822 date
    assert message.date_created.tzinfo is not None
    assert message.num_segments == "1"
    assert message.uri == (
        f"/2010-04-01/Accounts/{CREDS.twilio_account_sid}/Messages/{message.sid}.json"
    )


def test_twilio_sync_client_via_api_base_url(sim: ServerThread, twilio: Client) -> None:
    message = twilio.messages.create(to=CUSTOMER, from_=BUSINESS, body="hello there")

    assert_twilio_message(message, body="hello there")
    assert (message.to, message.from_) == (CUSTOMER, BUSINESS)
    [entry] = delivered(sim)
    assert (entry["provider"], entry["to"], entry["from"]) == ("twilio", CUSTOMER, BUSINESS)
    assert entry["message_id"] == message.sid
    assert twilio.messages(message.sid).fetch().status == "delivered"


def test_twilio_custom_http_client(sim: ServerThread) -> None:
    client = Client(
        CREDS.twilio_account_sid,
        CREDS.twilio_auth_token,
        http_client=RebasingHttpClient(sim.url),
        environment={},
    )
    try:
        message = client.messages.create(to=CUSTOMER, from_=BUSINESS, body="rebased")
    finally:
        close_twilio(client)
    assert_twilio_message(message, body="rebased")


# twilio's AsyncTwilioHttpClient passes aiohttp.BasicAuth as auth=, both deprecated in aiohttp
# 3.14; the two warnings are attributed to twilio's modules.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning:twilio.*")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning:twilio.*")
async def test_twilio_async_client(sim: ServerThread) -> None:
    async with AsyncTwilioHttpClient() as http:
        client = Client(
            CREDS.twilio_account_sid, CREDS.twilio_auth_token, http_client=http, environment={}
        )
        client.api.base_url = sim.url
        message = await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="async")
        with pytest.raises(TwilioRestException) as excinfo:
            await client.messages.create_async(to="", from_=BUSINESS, body="async")
    assert_twilio_message(message, body="async")
    assert (excinfo.value.status, excinfo.value.code) == (400, 21604)


def test_twilio_api_key_credentials(sim: ServerThread) -> None:
    client = Client(
        CREDS.twilio_api_key_sid,
        CREDS.twilio_api_key_secret,
        account_sid=CREDS.twilio_account_sid,
        environment={},
    )
    client.api.base_url = sim.url
    try:
        message = client.messages.create(to=CUSTOMER, from_=BUSINESS, body="keyed")
        account = client.api.v2010.accounts(CREDS.twilio_account_sid).fetch()
    finally:
        close_twilio(client)
    assert_twilio_message(message, body="keyed")
    assert account.auth_token is None  # only shown to the auth token itself


def test_twilio_account_fetch(twilio: Client) -> None:
    account = twilio.api.v2010.account.fetch()
    assert account.sid == CREDS.twilio_account_sid
    assert account.status == "active"
    assert account.auth_token == CREDS.twilio_auth_token


@pytest.mark.parametrize(
    ("username", "password", "account_sid"),
    [
        (CREDS.twilio_account_sid, "0" * 32, None),
        ("AC" + "1" * 32, CREDS.twilio_auth_token, None),
        (CREDS.twilio_api_key_sid, "wrong", CREDS.twilio_account_sid),
        (CREDS.twilio_account_sid, CREDS.twilio_auth_token, "AC" + "2" * 32),
    ],
    ids=["wrong-token", "wrong-account", "wrong-key-secret", "other-account-in-path"],
)
def test_twilio_auth_failures(
    sim: ServerThread, username: str, password: str, account_sid: str | None
) -> None:
    client = Client(username, password, account_sid=account_sid, environment={})
    client.api.base_url = sim.url
    try:
        with pytest.raises(TwilioRestException) as excinfo:
            client.messages.create(to=CUSTOMER, from_=BUSINESS, body="nope")
    finally:
        close_twilio(client)
    assert (excinfo.value.status, excinfo.value.code) == (401, 20003)
    assert "Authenticate" in excinfo.value.msg
    assert delivered(sim) == []


def test_twilio_auth_error_body_is_the_legacy_shape(sim: ServerThread) -> None:
    reply = requests.post(
        f"{sim.url}/2010-04-01/Accounts/{CREDS.twilio_account_sid}/Messages.json",
        data={"To": CUSTOMER, "From": BUSINESS, "Body": "x"},
        timeout=5,
    )
    assert reply.status_code == 401
    assert reply.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "", "from_": BUSINESS, "body": "hi"}, 21604),
        ({"to": CUSTOMER, "body": "hi"}, 21603),
        ({"to": CUSTOMER, "from_": BUSINESS}, 21602),
        ({"to": CUSTOMER, "from_": BUSINESS, "body": "x" * 1601}, 21617),
        ({"to": "not-a-number", "from_": BUSINESS, "body": "hi"}, 21211),
    ],
    ids=["no-to", "no-from", "no-body", "body-1601", "bad-to"],
)
def test_twilio_validation_errors(
    sim: ServerThread, twilio: Client, fields: dict[str, str], code: int
) -> None:
    with pytest.raises(TwilioRestException) as excinfo:
        twilio.messages.create(**fields)
    assert (excinfo.value.status, excinfo.value.code) == (400, code)
    assert delivered(sim) == []


def test_twilio_body_of_exactly_1600_chars_is_accepted(twilio: Client) -> None:
    message = twilio.messages.create(to=CUSTOMER, from_=BUSINESS, body="x" * 1600)
    assert message.num_segments == "11"


def test_twilio_messaging_service_send(sim: ServerThread, twilio: Client) -> None:
    service = "MG" + "a" * 32
    message = twilio.messages.create(to=CUSTOMER, messaging_service_sid=service, body="svc")

    assert message.status == "accepted"
    assert message.from_ is None
    assert message.messaging_service_sid == service
    [entry] = delivered(sim)
    assert (entry["from"], entry["messaging_service_sid"]) == (service, service)


def test_twilio_media_send(sim: ServerThread, twilio: Client) -> None:
    urls = ["https://example.com/a.png", "https://example.com/b.png"]
    message = twilio.messages.create(to=CUSTOMER, from_=BUSINESS, media_url=urls)
    assert message.sid.startswith("MM")
    assert message.num_media == "2"
    assert delivered(sim)[0]["media"] == urls


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("a" * 152 + "€", 1),  # 154 septets fit in one
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, yet the escape pair is not split
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("`", 1),
        ("\U0001f600" * 35, 1),  # 70 UTF-16 units
        ("\U0001f600" * 36, 2),
        ("a" * 66 + "\U0001f600" + "a" * 66, 3),  # 134 units, yet the pair is not split
    ],
)
def test_segment_counting(text: str, segments: int) -> None:
    assert count_segments(text) == segments


# ---- faults (plain aiohttp client) -------------------------------------------------------


def twilio_send_args(sim: ServerThread) -> dict[str, Any]:
    return {
        "url": f"{sim.url}/2010-04-01/Accounts/{CREDS.twilio_account_sid}/Messages.json",
        "data": {"To": CUSTOMER, "From": BUSINESS, "Body": "fault test"},
        "headers": {
            "Authorization": aiohttp.encode_basic_auth(
                CREDS.twilio_account_sid, CREDS.twilio_auth_token
            )
        },
    }


async def set_fault(session: aiohttp.ClientSession, sim: ServerThread, **plan: Any) -> None:
    async with session.post(f"{sim.url}/sim/faults", json=plan) as reply:
        assert reply.status == 200, await reply.text()


async def sim_json(
    session: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None
) -> Any:
    async with session.get(url, params=params) as reply:
        return await reply.json()


@pytest.mark.parametrize(
    ("path", "status", "expected"),
    [
        ("/restapi/v1.0/account/~", 503, {"errorCode": "CMN-201"}),
        ("/restapi/oauth/token", 500, {"errorCode": "CMN-500"}),
        ("/2010-04-01/Accounts/AC1.json", 503, {"code": 20503, "status": 503}),
        ("/2010-04-01/Accounts/AC1.json", 500, {"code": 20500, "status": 500}),
    ],
)
async def test_fault_5xx_in_carrier_shape(
    sim: ServerThread, path: str, status: int, expected: dict[str, Any]
) -> None:
    async with aiohttp.ClientSession() as session:
        await set_fault(session, sim, mode="5xx", status=status, count=1)
        async with session.get(sim.url + path) as reply:
            body = await reply.json()
            assert reply.status == status
        assert expected.items() <= body.items()


async def test_fault_count_then_back_to_normal(sim: ServerThread) -> None:
    async with aiohttp.ClientSession() as session:
        await set_fault(session, sim, mode="5xx", count=2)
        statuses = []
        for _ in range(3):
            async with session.post(**twilio_send_args(sim)) as reply:
                statuses.append(reply.status)
            # /sim routes are never faulted and do not use up the count.
            plan = await sim_json(session, f"{sim.url}/sim/faults")
        assert statuses == [503, 503, 201]
        assert plan == {"mode": "none", "delay_seconds": None, "count": None, "status": 503}
        assert len(await sim_json(session, f"{sim.url}/sim/messages")) == 1


async def test_fault_plan_is_visible(sim: ServerThread) -> None:
    async with aiohttp.ClientSession() as session:
        await set_fault(session, sim, mode="slow", delay_seconds=0.5, count=3)
        plan = await sim_json(session, f"{sim.url}/sim/faults")
    assert plan == {"mode": "slow", "delay_seconds": 0.5, "count": 3, "status": 503}


async def test_fault_slow_answers_late(sim: ServerThread) -> None:
    async with aiohttp.ClientSession() as session:
        await set_fault(session, sim, mode="slow", delay_seconds=0.3, count=1)
        started = time.monotonic()
        async with session.post(**twilio_send_args(sim)) as reply:
            assert reply.status == 201
        assert time.monotonic() - started >= 0.3


async def test_fault_timeout_outlasts_the_client(sim: ServerThread) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        await set_fault(session, sim, mode="timeout", count=1)
        with pytest.raises(TimeoutError):
            async with session.post(**twilio_send_args(sim)) as reply:
                await reply.read()
        async with session.get(f"{sim.url}/sim/messages") as reply:
            assert (await reply.json())["messages"] == []  # never processed


@pytest.mark.parametrize(
    ("method", "count", "dropped"),
    [("POST", 1, True), ("GET", 2, True), ("GET", 1, False)],
    ids=["post", "get-twice", "get-once-retried"],
)
async def test_fault_reset_drops_the_connection(
    sim: ServerThread, method: str, count: int, dropped: bool
) -> None:
    """aiohttp (3.14) resends an idempotent request once after a reset: one reset is not
    enough to make a GET fail, while a POST fails at the first."""
    send = twilio_send_args(sim)
    if method == "GET":
        send = {**send, "url": f"{sim.url}/2010-04-01/Accounts/{CREDS.twilio_account_sid}.json"}
        send.pop("data")
    async with aiohttp.ClientSession() as session:
        await set_fault(session, sim, mode="reset", count=count)
        if dropped:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.request(method, **send) as reply:
                    await reply.read()
        else:
            async with session.request(method, **send) as reply:
                assert reply.status == 200
        async with session.post(**twilio_send_args(sim)) as reply:
            assert reply.status == 201


async def test_fault_half_body_cuts_the_answer(sim: ServerThread) -> None:
    async with aiohttp.ClientSession() as session:
        await set_fault(session, sim, mode="half-body", count=1)
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(**twilio_send_args(sim)) as reply:
                assert reply.status == 201
                await reply.read()
        # Processed before the answer was cut: the message did go out.
        messages = (await sim_json(session, f"{sim.url}/sim/messages"))["messages"]
        assert len(messages) == 1


@pytest.mark.parametrize(
    "plan",
    [
        {"mode": "explode"},
        {"mode": "slow", "delay_seconds": -1},
        {"mode": "5xx", "count": 0},
        {"mode": "5xx", "status": 404},
        ["mode", "5xx"],
    ],
)
async def test_fault_plan_validation(sim: ServerThread, plan: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.url}/sim/faults", json=plan) as reply,
    ):
        assert reply.status == 400
        assert (await reply.json())["error"] == "invalid_request"


# ---- other routes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "key", "value"),
    [
        ("GET", "/restapi/v1.0/nowhere", 404, "errorCode", "CMN-102"),
        ("GET", "/2010-04-01/Accounts/AC1/Nowhere.json", 404, "code", 20404),
        ("GET", "/elsewhere", 404, "error", "not_found"),
        ("DELETE", "/restapi/oauth/token", 405, "errorCode", "CMN-405"),
    ],
)
async def test_unknown_routes(
    sim: ServerThread, method: str, path: str, status: int, key: str, value: Any
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sim.url + path) as reply,
    ):
        assert reply.status == status
        assert (await reply.json())[key] == value


async def test_messages_filter_and_clear(sim: ServerThread, twilio: Client) -> None:
    await asyncio.to_thread(twilio.messages.create, to=CUSTOMER, from_=BUSINESS, body="one")
    await asyncio.to_thread(twilio.messages.create, to=OTHER_CUSTOMER, from_=BUSINESS, body="two")
    async with aiohttp.ClientSession() as session:
        only = await sim_json(session, f"{sim.url}/sim/messages", {"to": OTHER_CUSTOMER})
        assert [entry["text"] for entry in only["messages"]] == ["two"]
        # An unencoded "+" arrives as a space; the filter forgives that.
        plus_as_space = await sim_json(session, f"{sim.url}/sim/messages?to={CUSTOMER}")
        assert [entry["text"] for entry in plus_as_space["messages"]] == ["one"]
        none = await sim_json(session, f"{sim.url}/sim/messages", {"provider": "ringcentral"})
        assert none["messages"] == []
        async with session.delete(f"{sim.url}/sim/messages") as reply:
            assert (await reply.json())["deleted"] == 2
        assert (await sim_json(session, f"{sim.url}/sim/messages"))["messages"] == []


# ---- tests.support.servers ---------------------------------------------------------------


def test_server_thread_accepts_async_factories_and_cleans_up() -> None:
    cleaned: list[bool] = []

    async def factory() -> Any:
        app = create_sim_app(credentials=SimCredentials(twilio_auth_token="f" * 32))

        async def on_cleanup(_: Any) -> None:
            cleaned.append(True)

        app.on_cleanup.append(on_cleanup)
        return app

    with ServerThread(factory) as server:
        assert wait_for_http(f"{server.url}/sim/health", timeout=5) == 200
        assert server.app[SIM_STATE].credentials.twilio_auth_token == "f" * 32
    assert cleaned == [True]


def test_server_thread_exit_is_prompt_with_a_parked_request() -> None:
    """A request parked by the timeout fault must not hold the runner's graceful shutdown."""
    server = ServerThread(create_sim_app).start()
    try:
        requests.post(f"{server.url}/sim/faults", json={"mode": "timeout"}, timeout=5)
        client = socket.create_connection((server.host, server.port))
        client.sendall(b"GET /restapi/v1.0/account/~ HTTP/1.1\r\nHost: sim\r\n\r\n")
        time.sleep(0.1)  # let the request reach the handler and park
    finally:
        started = time.monotonic()
        server.stop()
    elapsed = time.monotonic() - started
    assert client.recv(1024) == b""  # dropped without an answer
    client.close()
    assert elapsed < 2.0


def test_wait_for_http_counts_any_status_and_times_out(sim: ServerThread) -> None:
    assert wait_for_http(f"{sim.url}/elsewhere", timeout=2) == 404
    with pytest.raises(TimeoutError):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=0.2)
