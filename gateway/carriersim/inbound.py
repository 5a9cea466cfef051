"""Inbound SMS: the webhooks the simulated carriers deliver to the gateway.

``POST /sim/inbound`` with JSON::

    {"provider": "ringcentral" | "twilio",
     "from": "<customer number>",
     "to": "<business number>"  (ringcentral: also a list of numbers),
     "text": "<message text>",
     "message_id"?: str            (default: generated, unique),
     "messaging_service_sid"?: str (twilio),
     "opt_out_type"?: "STOP" | "START" | "HELP"  (twilio: Advanced Opt-Out's OptOutType),
     "gateway"?: url               (overrides the simulator's --gateway),
     "json_body"?: bool            (twilio: a JSON body signed through ?bodySHA256=),
     "bad_signature"?: bool}       (a forged X-Twilio-Signature / Verification-Token)

makes the simulator POST a real webhook and answer ``{"status", "headers", "body",
"message_id", "url", …}`` with what the gateway answered (``headers`` joins repeated names
with ", "; ``body`` is text, decoded with the reply's charset, at most 1 MiB). 400 on bad
input or with nowhere to deliver; 502 ``{"error": "gateway_unreachable", …}`` when the
gateway can't be reached or does not answer within 15 s (Twilio's default webhook timeout).

Twilio: ``POST {gateway}/webhooks/twilio``, ``application/x-www-form-urlencoded``, the fields
of an inbound SMS (see ``twilio_fields``), ``X-Twilio-Signature`` =
base64(HMAC-SHA1(auth token, URL + every parameter sorted by name, name+value)),
``I-Twilio-Idempotency-Token``, ``User-Agent: TwilioProxy/1.1``. With ``json_body`` the same
fields go as a JSON object, the URL gets ``?bodySHA256=<hex SHA-256 of the body>`` and the
signature covers the URL alone. A 2xx TwiML answer's ``<Message>`` verbs are "delivered":
recorded in ``/sim/messages`` (api ``twiml-reply``, from the business number, to the customer,
unless the verb's ``from``/``to`` attributes say otherwise) and listed in the answer's
``replies``; TwiML that does not parse is reported as ``twiml_error`` (Twilio's 12100).

RingCentral: a JSON instant-message notification (see ``rc_notification``) to every active
subscription whose filters cover ``…/message-store/instant?type=SMS`` (with its own
verification token, if it has one); without one, to ``{gateway}/webhooks/ringcentral`` with
``Verification-Token: <rc_verification_token>``. The answer's top level describes the
newest subscription's delivery; ``deliveries`` lists each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from gateway.carriersim.rc_subscriptions import (
    RC_USER_AGENT,
    instant_sms_event,
    read_capped,
    subscriptions_for_inbound_sms,
)
from gateway.carriersim.state import (
    SIM_STATE,
    Provider,
    SimCredentials,
    SimState,
    iso_millis,
    new_uuid,
    utcnow,
)
from gateway.carriersim.twilio_api import API_VERSION, count_segments, message_resource
from gateway.carriersim.wire import sim_error

TWILIO_PATH = "/webhooks/twilio"
RC_PATH = "/webhooks/ringcentral"
DELIVERY_TIMEOUT_SECONDS = 15.0
REPLY_BODY_MAX_BYTES = 1 << 20
TWIML_MAX_BYTES = 64 * 1024
OPT_OUT_TYPES = ("STOP", "START", "HELP")
ADDRESS_MAX_CHARS = 256
TWILIO_USER_AGENT = "TwilioProxy/1.1"

_REQUIRED = ("provider", "from", "to", "text")
_OPTIONAL = ("message_id", "gateway", "bad_signature")
_TWILIO_ONLY = ("messaging_service_sid", "opt_out_type", "json_body")


# ---- the Twilio signature ----------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """``X-Twilio-Signature``: base64(HMAC-SHA1(auth token, url + sorted name+value pairs)).

    ``url`` is the full URL the request goes to (query included, no fragment). Parameters are
    sorted by name (code points), then by value for a repeated name. A JSON body is signed
    by passing no parameters and a URL that carries ``bodySHA256``.
    """
    base = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), base.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# ---- input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundSpec:
    provider: Provider
    from_: str
    to: tuple[str, ...]
    text: str
    message_id: str | None = None
    messaging_service_sid: str | None = None
    opt_out_type: str | None = None
    gateway: str | None = None
    json_body: bool = False
    bad_signature: bool = False


def _address(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > ADDRESS_MAX_CHARS:
        raise ValueError(f"{name} is longer than {ADDRESS_MAX_CHARS} characters")
    return value.strip()


def _optional_str(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()


def _flag(raw: dict[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _gateway_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("gateway must be an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError("gateway must be a base URL without query or fragment")
    return value.rstrip("/")


def parse_spec(raw: Any) -> InboundSpec:
    """The validated request; ``ValueError`` with the reason otherwise."""
    if not isinstance(raw, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(raw) - {*_REQUIRED, *_OPTIONAL, *_TWILIO_ONLY})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in _REQUIRED if raw.get(name) is None]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    provider = raw["provider"]
    if provider not in get_args(Provider):
        raise ValueError('provider must be "ringcentral" or "twilio"')
    if provider != "twilio":
        given = [name for name in _TWILIO_ONLY if raw.get(name) not in (None, False)]
        if given:
            raise ValueError(f"{', '.join(given)}: only for provider twilio")
    to_raw = raw["to"]
    if isinstance(to_raw, list):
        if provider == "twilio":
            raise ValueError("to must be one number for twilio")
        if not to_raw:
            raise ValueError("to must not be an empty list")
        to = tuple(_address(number, "to[]") for number in to_raw)
    else:
        to = (_address(to_raw, "to"),)
    text = raw["text"]
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    opt_out_type = _optional_str(raw, "opt_out_type")
    if opt_out_type is not None:
        opt_out_type = opt_out_type.upper()
        if opt_out_type not in OPT_OUT_TYPES:
            raise ValueError(f"opt_out_type must be one of {', '.join(OPT_OUT_TYPES)}")
    checked_provider: Provider = provider
    return InboundSpec(
        provider=checked_provider,
        from_=_address(raw["from"], "from"),
        to=to,
        text=text,
        message_id=_optional_str(raw, "message_id"),
        messaging_service_sid=_optional_str(raw, "messaging_service_sid"),
        opt_out_type=opt_out_type,
        gateway=_gateway_url(_optional_str(raw, "gateway")),
        json_body=_flag(raw, "json_body"),
        bad_signature=_flag(raw, "bad_signature"),
    )


# ---- delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    url: str
    status: int
    headers: dict[str, str]
    body: str

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "headers": self.headers, "body": self.body}


class DeliveryFailed(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


async def post_webhook(url: URL, body: bytes, headers: dict[str, str]) -> Delivery:
    """POST one webhook; what the receiver answered, or ``DeliveryFailed``."""
    limit = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=limit) as session,
            session.post(url, data=body, headers=headers, allow_redirects=False) as reply,
        ):
            raw = await read_capped(reply, REPLY_BODY_MAX_BYTES)
            joined: dict[str, str] = {}
            for name, value in reply.headers.items():
                joined[name] = f"{joined[name]}, {value}" if name in joined else value
            text = _decode(raw[:REPLY_BODY_MAX_BYTES], reply.charset)
            return Delivery(url=str(url), status=reply.status, headers=joined, body=text)
    except TimeoutError as exc:
        reason = f"no answer within {DELIVERY_TIMEOUT_SECONDS:g} s"
        raise DeliveryFailed(str(url), reason) from exc
    except aiohttp.ClientError as exc:
        raise DeliveryFailed(str(url), f"cannot reach the gateway: {exc!r}") from exc


def _unreachable(failure: DeliveryFailed, message_id: str, **extra: Any) -> web.Response:
    return sim_error(
        502,
        "gateway_unreachable",
        failure.reason,
        url=failure.url,
        message_id=message_id,
        **extra,
    )


def _no_gateway(provider: Provider) -> web.Response:
    where = "no active subscription and " if provider == "ringcentral" else ""
    return sim_error(
        400,
        "no_gateway",
        f"nowhere to deliver: {where}no gateway URL (start the simulator with --gateway "
        'or pass "gateway")',
    )


def _forged(secret: str) -> str:
    """A well-formed stand-in for a secret the sender does not know."""
    return "forged-" + hashlib.sha256(("forged:" + secret).encode()).hexdigest()[:24]


# ---- Twilio ------------------------------------------------------------------------------

# Calling code → ISO country, longest first; +1 is split between the US and Canada below.
_COUNTRIES = (
    ("44", "GB"),
    ("33", "FR"),
    ("49", "DE"),
    ("34", "ES"),
    ("52", "MX"),
    ("61", "AU"),
    ("7", "RU"),
)
_CA_AREA_CODES = frozenset(
    {
        *("204", "226", "236", "249", "250", "289", "306", "343", "365", "403", "416", "418"),
        *("431", "437", "438", "450", "506", "514", "519", "548", "579", "581", "587", "604"),
        *("613", "639", "647", "705", "709", "778", "780", "782", "807", "819", "825", "867"),
        *("873", "902", "905"),
    }
)
# A few area codes' states: enough for demos of state-specific rules (FL, OK, MD quiet hours).
_US_STATES = {
    **dict.fromkeys(("650", "415", "510", "408", "213", "310", "619", "916"), "CA"),
    **dict.fromkeys(("212", "646", "718", "917", "347"), "NY"),
    **dict.fromkeys(("305", "786", "407", "813", "904"), "FL"),
    **dict.fromkeys(("405", "918", "539"), "OK"),
    **dict.fromkeys(("410", "443", "301", "240"), "MD"),
    **dict.fromkeys(("512", "214", "713", "210"), "TX"),
    **dict.fromkeys(("206", "425"), "WA"),
    **dict.fromkeys(("312", "773"), "IL"),
}


def number_location(address: str) -> tuple[str, str]:
    """``(country, state)`` as Twilio fills ``FromCountry``/``FromState``; ``""`` if unknown.

    The simulator has no number database: city and ZIP are always empty (as Twilio sends
    them when it does not know), and only a few area codes have a state.
    """
    number = address.split(":", 1)[-1].strip()
    if not number.startswith("+"):
        return "", ""
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits.startswith("1") and len(digits) == 11:
        area = digits[1:4]
        if area in _CA_AREA_CODES:
            return "CA", ""
        return "US", _US_STATES.get(area, "")
    for code, country in _COUNTRIES:
        if digits.startswith(code):
            return country, ""
    return "", ""


def twilio_fields(creds: SimCredentials, spec: InboundSpec, sid: str) -> list[tuple[str, str]]:
    """The parameters of Twilio's inbound-SMS webhook, in the order Twilio tends to send."""
    to = spec.to[0]
    to_country, to_state = number_location(to)
    from_country, from_state = number_location(spec.from_)
    fields = [
        ("ToCountry", to_country),
        ("ToState", to_state),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", from_state),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", spec.text),
        ("FromCountry", from_country),
        ("To", to),
    ]
    if spec.messaging_service_sid is not None:
        fields.append(("MessagingServiceSid", spec.messaging_service_sid))
    fields += [
        ("ToZip", ""),
        ("NumSegments", str(count_segments(spec.text))),
        ("MessageSid", sid),
        ("AccountSid", creds.twilio_account_sid),
        ("From", spec.from_),
        ("ApiVersion", API_VERSION),
    ]
    if spec.opt_out_type is not None:
        fields.append(("OptOutType", spec.opt_out_type))
    return fields


@dataclass(frozen=True)
class TwimlMessage:
    text: str
    to: str | None
    from_: str | None
    media: tuple[str, ...]


def parse_twiml(document: str) -> list[TwimlMessage]:
    """The ``<Message>`` verbs of a TwiML answer; ``ValueError`` if it is not TwiML."""
    if len(document.encode("utf-8")) > TWIML_MAX_BYTES:
        raise ValueError(f"TwiML is longer than {TWIML_MAX_BYTES} bytes")
    if "<!DOCTYPE" in document.upper() or "<!ENTITY" in document.upper():
        raise ValueError("TwiML must not carry a DTD")
    try:
        # No DTD (checked above), and expat resolves no external entities: safe to parse.
        root = ET.fromstring(document)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from exc
    if root.tag != "Response":
        raise ValueError(f"the root element is <{root.tag}>, not <Response>")
    messages = []
    for verb in root.findall("Message"):
        parts = [verb.text or ""]
        media: list[str] = []
        for child in verb:
            if child.tag == "Body":
                parts.append("".join(child.itertext()))
            elif child.tag == "Media":
                media.append((child.text or "").strip())
            parts.append(child.tail or "")
        text = "".join(parts).strip()
        if not text and not media:
            continue  # Twilio refuses an empty message (14103); nothing goes out
        messages.append(
            TwimlMessage(
                text=text,
                to=verb.get("to") or None,
                from_=verb.get("from") or None,
                media=tuple(url for url in media if url),
            )
        )
    return messages


def _record_replies(
    state: SimState, spec: InboundSpec, messages: list[TwimlMessage]
) -> list[dict[str, Any]]:
    recorded = []
    account_sid = state.credentials.twilio_account_sid
    for message in messages:
        sid = ("MM" if message.media else "SM") + uuid.uuid4().hex
        sender = message.from_ or spec.to[0]
        recipient = message.to or spec.from_
        state.twilio_messages[sid] = message_resource(
            account_sid,
            sid,
            from_=sender,
            to=recipient,
            body=message.text,
            media=message.media,
            messaging_service_sid=spec.messaging_service_sid,
            status="sent",
            direction="outbound-reply",
        )
        entry = state.deliver(
            provider="twilio",
            api="twiml-reply",
            message_id=sid,
            from_=sender,
            to=recipient,
            text=message.text,
            media=message.media,
            messaging_service_sid=spec.messaging_service_sid,
        )
        recorded.append(entry.to_json())
    return recorded


async def deliver_twilio(state: SimState, spec: InboundSpec) -> web.Response:
    base = spec.gateway or state.gateway_url
    if base is None:
        return _no_gateway("twilio")
    creds = state.credentials
    sid = spec.message_id or "SM" + uuid.uuid4().hex
    fields = twilio_fields(creds, spec, sid)
    url = URL(base.rstrip("/") + TWILIO_PATH)
    if spec.json_body:
        body = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":")).encode()
        url = url.update_query(bodySHA256=body_sha256(body))
        signed: list[tuple[str, str]] = []
        content_type = "application/json"
    else:
        body = urlencode(fields).encode("ascii")
        signed = fields
        content_type = "application/x-www-form-urlencoded"
    key = _forged(creds.twilio_auth_token) if spec.bad_signature else creds.twilio_auth_token
    headers = {
        "Content-Type": content_type,
        "X-Twilio-Signature": twilio_signature(key, str(url), signed),
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "User-Agent": TWILIO_USER_AGENT,
        "X-Home-Region": "us1",
        "Cache-Control": "max-age=259200",
    }
    try:
        delivery = await post_webhook(url, body, headers)
    except DeliveryFailed as failure:
        return _unreachable(failure, sid)
    answer: dict[str, Any] = {**delivery.to_json(), "message_id": sid, "replies": []}
    if 200 <= delivery.status < 300 and delivery.body.lstrip().startswith("<"):
        try:
            messages = parse_twiml(delivery.body)
        except ValueError as exc:
            answer["twiml_error"] = f"12100 Document parse failure: {exc}"
        else:
            answer["replies"] = _record_replies(state, spec, messages)
    return web.json_response(answer)


# ---- RingCentral -------------------------------------------------------------------------


def _conversation_id(state: SimState, spec: InboundSpec) -> str:
    if len(spec.to) == 1:
        # Keyed as the business's reply would be (from business, to customer): one thread.
        return str(state.rc_conversation_id(spec.to[0], spec.from_))
    return str(state.rc_conversation_id(spec.from_, ",".join(sorted(spec.to))))


def rc_notification(
    state: SimState, spec: InboundSpec, message_id: str, subscription_id: str
) -> dict[str, Any]:
    """The instant-message notification of one inbound SMS."""
    creds = state.credentials
    stamp = iso_millis(utcnow())
    conversation = _conversation_id(state, spec)
    recipients: list[dict[str, Any]] = []
    for number in spec.to:
        recipient: dict[str, Any] = {"phoneNumber": number}
        if number == creds.rc_username:
            recipient["name"] = "Sim Sender"
        recipients.append(recipient)
    return {
        "uuid": new_uuid(),
        "event": instant_sms_event(creds),
        "timestamp": stamp,
        "subscriptionId": subscription_id,
        "ownerId": creds.rc_extension_id,
        "body": {
            "id": message_id,
            "to": recipients,
            "from": {"phoneNumber": spec.from_},
            "type": "SMS",
            "creationTime": stamp,
            "lastModifiedTime": stamp,
            "readStatus": "Unread",
            "priority": "Normal",
            "attachments": [{"id": message_id, "type": "Text", "contentType": "text/plain"}],
            "direction": "Inbound",
            "availability": "Alive",
            "subject": spec.text,
            "messageStatus": "Received",
            "conversationId": conversation,
            "conversation": {"id": conversation},
        },
    }


async def deliver_ringcentral(state: SimState, spec: InboundSpec) -> web.Response:
    creds = state.credentials
    targets: list[tuple[str, str | None, str]] = [
        (sub.address, sub.verification_token, sub.id)
        for sub in subscriptions_for_inbound_sms(state)
    ]
    if not targets:
        base = spec.gateway or state.gateway_url
        if base is None:
            return _no_gateway("ringcentral")
        targets = [
            (
                base.rstrip("/") + RC_PATH,
                creds.rc_verification_token,
                state.rc_default_subscription_id,
            )
        ]
    message_id = spec.message_id or str(state.next_rc_message_id())
    outcomes: list[dict[str, Any]] = []
    first_failure: DeliveryFailed | None = None
    for index, (address, token, subscription_id) in enumerate(targets):
        notification = rc_notification(state, spec, message_id, subscription_id)
        body = json.dumps(notification, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": RC_USER_AGENT}
        if spec.bad_signature:
            headers["Verification-Token"] = _forged(token or creds.rc_verification_token)
        elif token is not None:
            headers["Verification-Token"] = token
        try:
            delivery = await post_webhook(URL(address), body, headers)
        except DeliveryFailed as failure:
            if index == 0:
                first_failure = failure
            outcomes.append(
                {"url": failure.url, "error": failure.reason, "subscription_id": subscription_id}
            )
            continue
        outcomes.append({**delivery.to_json(), "subscription_id": subscription_id})
    if first_failure is not None:
        return _unreachable(first_failure, message_id, deliveries=outcomes)
    answer = {**outcomes[0], "message_id": message_id, "deliveries": outcomes}
    return web.json_response(answer)


# ---- the route ---------------------------------------------------------------------------


async def inbound(request: web.Request) -> web.Response:
    try:
        raw = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return sim_error(400, "invalid_request", "the body must be JSON")
    try:
        spec = parse_spec(raw)
    except ValueError as exc:
        return sim_error(400, "invalid_request", str(exc))
    state = request.app[SIM_STATE]
    if spec.provider == "twilio":
        return await deliver_twilio(state, spec)
    return await deliver_ringcentral(state, spec)
