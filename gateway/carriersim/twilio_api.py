"""Simulated Twilio REST API (2010-04-01): the account resource and Messages.

Contracts worth knowing:

- HTTP Basic ``AccountSid:AuthToken``, or ``ApiKeySid:ApiKeySecret`` of the configured API
  key, and the ``{sid}`` of the path must be the configured account; anything else is 401
  code 20003 (``Authenticate``) with a ``WWW-Authenticate: Basic`` header.
- ``POST …/Messages.json`` takes form fields ``To``, ``From`` or ``MessagingServiceSid``,
  ``Body``, repeated ``MediaUrl``, ``ContentSid``. Checks, in Twilio's order: 21604 (no
  ``To``), 21603 (neither ``From`` nor ``MessagingServiceSid``), 21602 (no body, media or
  content), 21617 (``Body`` over 1600 characters), 21211 (``To`` is not an address).
  Answers 201 with the message resource; ``status`` is ``queued``, or ``accepted`` when a
  Messaging Service picks the sender (then ``from`` is null, as at Twilio).
- ``num_segments`` is counted here, independently of ``policy``: GSM-7 160/153, UCS-2 70/67
  (UTF-16 units), an escape pair or a surrogate pair never split.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from aiohttp import web
from multidict import MultiDict

from gateway.carriersim.state import SIM_STATE, SimCredentials
from gateway.carriersim.wire import (
    basic_credentials,
    json_reply,
    plausible_number,
    rfc2822_now,
    twilio_error,
)

API_VERSION = "2010-04-01"
BODY_MAX_CHARS = 1600

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
# Channel prefixes Twilio accepts on addresses; only the phone-number ones are checked.
_PHONE_CHANNELS = ("sms:", "mms:", "rcs:", "whatsapp:")
_OTHER_CHANNELS = ("messenger:",)


def count_segments(text: str) -> int:
    """How many SMS segments ``text`` takes (at least 1)."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text):
        units = [2 if ch in _GSM7_EXTENSION else 1 for ch in text]
        single, multi = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return segments


def _authenticated(request: web.Request, creds: SimCredentials) -> bool:
    basic = basic_credentials(request.headers.get("Authorization"))
    if basic is None:
        return False
    user, password = basic
    if user == creds.twilio_account_sid:
        secret = creds.twilio_auth_token
    elif creds.twilio_api_key_sid and user == creds.twilio_api_key_sid:
        secret = creds.twilio_api_key_secret
    else:
        return False
    password_ok = hmac.compare_digest(password.encode(), secret.encode())
    return password_ok and request.match_info["account_sid"] == creds.twilio_account_sid


def _uses_auth_token(request: web.Request, creds: SimCredentials) -> bool:
    basic = basic_credentials(request.headers.get("Authorization"))
    return basic is not None and basic[0] == creds.twilio_account_sid


def _unauthenticated() -> web.Response:
    return twilio_error(401, 20003, "Authenticate")


def _address_ok(address: str) -> bool:
    lowered = address.lower()
    if lowered.startswith(_OTHER_CHANNELS):
        return len(address.split(":", 1)[1]) > 0
    for channel in _PHONE_CHANNELS:
        if lowered.startswith(channel):
            address = address[len(channel) :]
            break
    return plausible_number(address)


async def _form(request: web.Request) -> MultiDict[str]:
    fields: MultiDict[str] = MultiDict()
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return fields
    for key, value in (await request.post()).items():
        if isinstance(value, str):
            fields.add(key, value)
    return fields


def _message_uri(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


def message_resource(
    account_sid: str,
    sid: str,
    *,
    from_: str | None,
    to: str,
    body: str,
    media: tuple[str, ...],
    messaging_service_sid: str | None,
    status: str,
    direction: str,
) -> dict[str, Any]:
    """A Message resource as the REST API answers it (snake_case, strings for counts)."""
    stamp = rfc2822_now()
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": stamp,
        "date_sent": None,
        "date_updated": stamp,
        "direction": direction,
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": messaging_service_sid,
        "num_media": str(len(media)),
        "num_segments": str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"
        },
        "to": to,
        "uri": _message_uri(account_sid, sid),
    }


async def create_message(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    creds = state.credentials
    if not _authenticated(request, creds):
        return _unauthenticated()
    form = await _form(request)
    to = form.get("To", "").strip()
    sender = form.get("From", "").strip() or None
    service = form.get("MessagingServiceSid", "").strip() or None
    body = form.get("Body", "")
    media = tuple(url for url in form.getall("MediaUrl", []) if url)
    content_sid = form.get("ContentSid", "").strip() or None

    if not to:
        return twilio_error(400, 21604, "A 'To' phone number is required.")
    if sender is None and service is None:
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if not body and not media and content_sid is None:
        return twilio_error(400, 21602, "Message body is required.")
    if len(body) > BODY_MAX_CHARS:
        return twilio_error(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    if not _address_ok(to):
        return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if _digits(to) in state.carrier_opt_outs:
        return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")

    account_sid = creds.twilio_account_sid
    sid = ("MM" if media else "SM") + uuid.uuid4().hex
    resource = message_resource(
        account_sid,
        sid,
        from_=None if service is not None and sender is None else sender,
        to=to,
        body=body,
        media=media,
        messaging_service_sid=service,
        status="accepted" if service is not None else "queued",
        direction="outbound-api",
    )
    state.twilio_messages[sid] = resource
    state.deliver(
        provider="twilio",
        api="messages",
        message_id=sid,
        from_=sender or service,
        to=to,
        text=body,
        media=media,
        messaging_service_sid=service,
    )
    return json_reply(resource, status=201, provider="twilio")


async def get_message(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    if not _authenticated(request, state.credentials):
        return _unauthenticated()
    resource = state.twilio_messages.get(request.match_info["message_sid"])
    if resource is None:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
    # Delivery is instant in the simulator: by the time anyone asks, it has arrived.
    delivered = {**resource, "status": "delivered", "date_sent": resource["date_created"]}
    return json_reply(delivered, provider="twilio")


async def get_account(request: web.Request) -> web.Response:
    """The account resource; ``auth_token`` only when asked with the auth token itself."""
    state = request.app[SIM_STATE]
    creds = state.credentials
    if not _authenticated(request, creds):
        return _unauthenticated()
    sid = creds.twilio_account_sid
    base = f"/{API_VERSION}/Accounts/{sid}"
    body: dict[str, Any] = {
        "auth_token": creds.twilio_auth_token if _uses_auth_token(request, creds) else None,
        "date_created": "Mon, 06 Jan 2025 17:00:00 +0000",
        "date_updated": "Mon, 06 Jan 2025 17:00:00 +0000",
        "friendly_name": "Stopgate carrier simulator",
        "owner_account_sid": sid,
        "sid": sid,
        "status": "active",
        "subresource_uris": {
            "messages": f"{base}/Messages.json",
            "incoming_phone_numbers": f"{base}/IncomingPhoneNumbers.json",
            "keys": f"{base}/Keys.json",
        },
        "type": "Full",
        "uri": f"{base}.json",
    }
    return json_reply(body, provider="twilio")


async def list_messages(request: web.Request) -> web.Response:
    """The first page of the account's messages, newest first (``PageSize`` honoured)."""
    state = request.app[SIM_STATE]
    if not _authenticated(request, state.credentials):
        return _unauthenticated()
    try:
        size = max(1, min(1000, int(request.query.get("PageSize", "50"))))
    except ValueError:
        return twilio_error(400, 20001, "PageSize must be an integer")
    messages = list(reversed(state.twilio_messages.values()))[:size]
    uri = f"/{API_VERSION}/Accounts/{state.credentials.twilio_account_sid}/Messages.json"
    body = {
        "messages": messages,
        "page": 0,
        "page_size": size,
        "first_page_uri": f"{uri}?PageSize={size}&Page=0",
        "next_page_uri": None,
        "previous_page_uri": None,
        "start": 0,
        "end": max(0, len(messages) - 1),
        "uri": f"{uri}?PageSize={size}&Page=0",
    }
    return json_reply(body, provider="twilio")


def add_routes(router: web.UrlDispatcher) -> None:
    account = f"/{API_VERSION}/Accounts/{{account_sid}}"
    router.add_get(account + ".json", get_account)
    router.add_get(account + "/Messages.json", list_messages)
    router.add_post(account + "/Messages.json", create_message)
    router.add_get(account + "/Messages/{message_sid}.json", get_message)


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())
