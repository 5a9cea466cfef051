"""Simulated RingCentral REST API: OAuth, account/extension info, SMS/MMS, A2P batches.

Contracts worth knowing:

- ``POST /restapi/oauth/token`` (form-encoded, client authenticated by HTTP Basic
  ``client_id:client_secret`` or by ``client_id``/``client_secret`` form fields) grants
  ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (``assertion``), ``password``
  (``username``, ``password``, optional ``extension``) and ``refresh_token``.
  ``access_token_ttl``/``refresh_token_ttl`` are honoured up to RingCentral's maxima (1 h, 1
  week); unlike the real platform, any value down to 1 s is accepted so tests can watch a
  token expire. A refresh rotates the pair: the old access *and* refresh token stop working.
- Client failures answer 401 ``invalid_client``; bad grants 400 ``invalid_grant``; the bodies
  carry ``error``, ``error_description`` and ``errors: [{errorCode, message}]``. The OAU-…
  codes are the platform's where known (OAU-123, OAU-153, OAU-250); the others are stand-ins.
- REST calls need ``Authorization: Bearer <token>``; the scheme is matched case-insensitively
  because the official Python SDK sends ``bearer``. Missing → 401 ``AGW-401``; unknown or
  revoked → 401 ``TokenInvalid``; expired → 401 ``TokenExpired``.
- The account segment accepts ``~`` or the configured account id, the extension segment
  ``~`` or the configured extension id; anything else is 404 ``CMN-102``.
- Validation failures of a send answer 400 with ``errorCode: "CMN-101"`` and the offending
  ``parameterName``.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import MultiDict

from gateway.carriersim.state import (
    SIM_STATE,
    RcSession,
    SimCredentials,
    SimState,
    iso_millis,
    new_uuid,
    now_seconds,
    utcnow,
)
from gateway.carriersim.wire import (
    basic_credentials,
    json_reply,
    plausible_number,
    rc_error,
    rc_invalid_parameter,
    rc_missing_parameter,
    rc_oauth_error,
    utf16_units,
)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TTL_MAX = 3600
REFRESH_TTL_MAX = 604_800
SCOPE = "A2PSMS ReadAccounts ReadMessages SMS"
TEXT_MAX_UTF16 = 1000
MMS_ATTACHMENTS_MAX = 10
MMS_TOTAL_BYTES_MAX = 1_572_864  # 1.5 MiB, RingCentral's documented MMS total

_V1 = "/restapi/v1.0"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int


# ---- OAuth -------------------------------------------------------------------------------


async def _form(request: web.Request) -> MultiDict[str]:
    """The text fields of a form-encoded body; anything else reads as an empty form."""
    fields: MultiDict[str] = MultiDict()
    if request.content_type != "application/x-www-form-urlencoded":
        return fields
    for key, value in (await request.post()).items():
        if isinstance(value, str):
            fields.add(key, value)
    return fields


def _client_of(
    request: web.Request, form: MultiDict[str], creds: SimCredentials
) -> str | web.Response:
    """The authenticated client id, or the OAuth error to answer."""
    header = request.headers.get("Authorization")
    client_id: str | None
    secret: str | None
    if header:
        basic = basic_credentials(header)
        if basic is None:
            return rc_oauth_error(
                401, "invalid_client", "OAU-123", "Client authentication is required"
            )
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id:
        return rc_oauth_error(401, "invalid_client", "OAU-123", "Client authentication is required")
    if client_id != creds.rc_client_id or not hmac.compare_digest(
        (secret or "").encode(), creds.rc_client_secret.encode()
    ):
        return rc_oauth_error(
            401,
            "invalid_client",
            "OAU-153",
            f"Invalid client: {client_id}",
            parameters=[{"parameterName": "client_id", "parameterValue": client_id}],
        )
    return client_id


def _ttl(raw: str | None, maximum: int) -> int:
    if raw is None:
        return maximum
    try:
        value = int(raw)
    except ValueError:
        return maximum
    return min(max(value, 1), maximum)


def _same_login(given: str, expected: str) -> bool:
    given, expected = given.strip().lower(), expected.strip().lower()
    if given == expected:
        return True
    # Phone-number logins: "+16505550100", "16505550100" and "(650) 555-0100" are one user.
    if plausible_number(given) and plausible_number(expected):
        a, b = re.sub(r"\D", "", given), re.sub(r"\D", "", expected)
        return a == b or a == "1" + b or "1" + a == b
    return False


def _issue_tokens(
    state: SimState, client_id: str, form: MultiDict[str], endpoint_id: str | None = None
) -> RcSession:
    now = now_seconds()
    session = RcSession(
        client_id=client_id,
        access_token="SIMAT-" + secrets.token_urlsafe(48),
        refresh_token="SIMRT-" + secrets.token_urlsafe(48),
        access_expires_at=now + _ttl(form.get("access_token_ttl"), ACCESS_TTL_MAX),
        refresh_expires_at=now + _ttl(form.get("refresh_token_ttl"), REFRESH_TTL_MAX),
        scope=SCOPE,
        endpoint_id=endpoint_id or secrets.token_urlsafe(16),
    )
    state.rc_by_access[session.access_token] = session
    state.rc_by_refresh[session.refresh_token] = session
    return session


def _token_reply(state: SimState, session: RcSession) -> web.Response:
    now = now_seconds()
    body = {
        "access_token": session.access_token,
        "token_type": "bearer",
        "expires_in": max(0, round(session.access_expires_at - now)),
        "refresh_token": session.refresh_token,
        "refresh_token_expires_in": max(0, round(session.refresh_expires_at - now)),
        "scope": session.scope,
        "owner_id": state.credentials.rc_extension_id,
        "endpoint_id": session.endpoint_id,
    }
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    return json_reply(body, provider="ringcentral", headers=headers)


def _required(form: MultiDict[str], name: str) -> str | web.Response:
    value = form.get(name)
    if not value:
        return rc_oauth_error(400, "invalid_request", "OAU-152", f"Parameter [{name}] is required")
    return value


async def oauth_token(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    creds = state.credentials
    form = await _form(request)
    client = _client_of(request, form, creds)
    if isinstance(client, web.Response):
        return client
    grant = form.get("grant_type")
    if grant == JWT_GRANT:
        assertion = _required(form, "assertion")
        if isinstance(assertion, web.Response):
            return assertion
        if not hmac.compare_digest(assertion.encode(), creds.rc_jwt.encode()):
            return rc_oauth_error(400, "invalid_grant", "OAU-144", "Invalid JWT assertion")
        return _token_reply(state, _issue_tokens(state, client, form))
    if grant == "password":
        username = _required(form, "username")
        if isinstance(username, web.Response):
            return username
        password = _required(form, "password")
        if isinstance(password, web.Response):
            return password
        extension = form.get("extension") or ""
        valid = (
            _same_login(username, creds.rc_username)
            and hmac.compare_digest(password.encode(), creds.rc_password.encode())
            and extension in ("", creds.rc_extension_number)
        )
        if not valid:
            return rc_oauth_error(
                400, "invalid_grant", "OAU-140", "Invalid resource owner credentials"
            )
        return _token_reply(state, _issue_tokens(state, client, form))
    if grant == "refresh_token":
        refresh = _required(form, "refresh_token")
        if isinstance(refresh, web.Response):
            return refresh
        old = state.rc_by_refresh.get(refresh)
        if old is None or old.client_id != client:
            return rc_oauth_error(400, "invalid_grant", "OAU-211", "Token is revoked")
        if old.refresh_expires_at <= now_seconds():
            state.drop_rc_session(old)
            return rc_oauth_error(400, "invalid_grant", "OAU-211", "Token is expired")
        state.drop_rc_session(old)
        return _token_reply(state, _issue_tokens(state, client, form, old.endpoint_id))
    return rc_oauth_error(400, "invalid_request", "OAU-250", "Unsupported grant type")


async def oauth_revoke(request: web.Request) -> web.Response:
    """RFC 7009: an unknown token is not an error; either token of a pair ends the pair."""
    state = request.app[SIM_STATE]
    form = await _form(request)
    client = _client_of(request, form, state.credentials)
    if isinstance(client, web.Response):
        return client
    token = form.get("token") or ""
    session = state.rc_by_access.get(token) or state.rc_by_refresh.get(token)
    if session is not None and session.client_id == client:
        state.drop_rc_session(session)
    return web.Response(status=200, headers={"Cache-Control": "no-store"})


# ---- bearer-protected REST ---------------------------------------------------------------


def bearer_session(request: web.Request) -> RcSession | web.Response:
    state = request.app[SIM_STATE]
    header = request.headers.get("Authorization")
    if not header:
        return rc_error(401, "AGW-401", "Authorization header is not specified")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return rc_error(401, "TokenInvalid", "Unparseable access token")
    session = state.rc_session(token)
    if session is None:
        return rc_error(
            401,
            "TokenInvalid",
            "Access token corrupted",
            inner_code="OAU-213",
            inner_message="Token not found",
        )
    if session.access_expires_at <= now_seconds():
        return rc_error(401, "TokenExpired", "Access token expired", inner_code="OAU-213")
    return session


def _account_path(request: web.Request, with_extension: bool) -> web.Response | None:
    creds = request.app[SIM_STATE].credentials
    if request.match_info["account_id"] not in ("~", creds.rc_account_id):
        return rc_error(
            404, "CMN-102", "Resource for parameter [accountId] is not found", parameter="accountId"
        )
    if with_extension and request.match_info["extension_id"] not in ("~", creds.rc_extension_id):
        return rc_error(
            404,
            "CMN-102",
            "Resource for parameter [extensionId] is not found",
            parameter="extensionId",
        )
    return None


def origin_of(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _account_uri(request: web.Request) -> str:
    return f"{origin_of(request)}{_V1}/account/{request.app[SIM_STATE].credentials.rc_account_id}"


def _extension_uri(request: web.Request) -> str:
    return f"{_account_uri(request)}/extension/{request.app[SIM_STATE].credentials.rc_extension_id}"


def _guarded(request: web.Request, *, with_extension: bool) -> web.Response | None:
    session = bearer_session(request)
    if isinstance(session, web.Response):
        return session
    return _account_path(request, with_extension)


_US = {"id": "1", "name": "United States", "isoCode": "US", "callingCode": "1"}


async def get_account(request: web.Request) -> web.Response:
    refused = _guarded(request, with_extension=False)
    if refused is not None:
        return refused
    creds = request.app[SIM_STATE].credentials
    uri = _account_uri(request)
    body = {
        "uri": uri,
        "id": int(creds.rc_account_id) if creds.rc_account_id.isdigit() else creds.rc_account_id,
        "serviceInfo": {
            "uri": f"{uri}/service-info",
            "brand": {"id": "1210", "name": "RingCentral", "homeCountry": _US},
            "servicePlan": {"id": "sim-plan", "name": "Simulated plan", "edition": "Premium"},
        },
        "mainNumber": creds.rc_username,
        "status": "Confirmed",
        "setupWizardState": "Completed",
        "regionalSettings": {
            "homeCountry": _US,
            "timezone": {"id": "58", "name": "US/Pacific", "description": "Pacific Time"},
            "language": {"id": "1033", "name": "English (United States)", "localeCode": "en-US"},
            "timeFormat": "12h",
        },
    }
    return json_reply(body, provider="ringcentral")


async def get_extension(request: web.Request) -> web.Response:
    refused = _guarded(request, with_extension=True)
    if refused is not None:
        return refused
    creds = request.app[SIM_STATE].credentials
    body = {
        "uri": _extension_uri(request),
        "id": int(creds.rc_extension_id)
        if creds.rc_extension_id.isdigit()
        else creds.rc_extension_id,
        "extensionNumber": creds.rc_extension_number,
        "contact": {
            "firstName": "Sim",
            "lastName": "Sender",
            "email": "sim-sender@example.com",
            "businessPhone": creds.rc_username,
        },
        "name": "Sim Sender",
        "type": "User",
        "status": "Enabled",
        "account": {"uri": _account_uri(request), "id": creds.rc_account_id},
        "permissions": {"admin": {"enabled": True}, "internationalCalling": {"enabled": False}},
        "serviceFeatures": [
            {"featureName": "SMS", "enabled": True},
            {"featureName": "MMS", "enabled": True},
            {"featureName": "A2PSMS", "enabled": True},
        ],
        "setupWizardState": "Completed",
        "hidden": False,
    }
    return json_reply(body, provider="ringcentral")


# ---- sends -------------------------------------------------------------------------------


async def read_json_object(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return rc_error(415, "CMN-415", f"Unsupported Content-Type [{request.content_type}]")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return rc_error(400, "InvalidPayload", "Request body is not valid JSON")
    if not isinstance(body, dict):
        return rc_error(400, "InvalidPayload", "Request body must be a JSON object")
    return body


async def _read_send_body(
    request: web.Request,
) -> tuple[dict[str, Any], list[Attachment]] | web.Response:
    """JSON, or multipart (``form-data`` or ``mixed``): one JSON part plus attachment parts.

    The JSON part is the first part typed ``application/json`` (the Python SDK also names it
    ``json``); every other part is an attachment.
    """
    if not request.content_type.startswith("multipart/"):
        body = await read_json_object(request)
        return body if isinstance(body, web.Response) else (body, [])
    body_part: dict[str, Any] | None = None
    attachments: list[Attachment] = []
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                return rc_error(400, "InvalidPayload", "Nested multipart bodies are not supported")
            data = await part.read(decode=True)
            part_type = part.headers.get("Content-Type", "")
            is_json = part_type.startswith("application/json") or part.name == "json"
            if body_part is None and is_json:
                parsed = json.loads(bytes(data))
                if not isinstance(parsed, dict):
                    return rc_error(400, "InvalidPayload", "The JSON part must be an object")
                body_part = parsed
            else:
                attachments.append(
                    Attachment(
                        filename=part.filename or part.name or "attachment",
                        content_type=part_type or "application/octet-stream",
                        size=len(data),
                    )
                )
    except (ValueError, UnicodeDecodeError) as exc:
        return rc_error(400, "InvalidPayload", f"Malformed multipart body: {exc}")
    if body_part is None:
        return rc_error(400, "InvalidPayload", "The multipart body has no JSON part")
    return body_part, attachments


def _phone_of(value: Any, parameter: str) -> str | web.Response:
    if not isinstance(value, dict) or "phoneNumber" not in value:
        return rc_missing_parameter(parameter)
    number = value["phoneNumber"]
    if not isinstance(number, str) or not plausible_number(number):
        return rc_invalid_parameter(parameter)
    return number


def _check_text(text: Any, *, required: bool, parameter: str = "text") -> str | web.Response:
    if text is None or text == "":
        return rc_missing_parameter(parameter) if required else ""
    if not isinstance(text, str):
        return rc_invalid_parameter(parameter)
    if utf16_units(text) > TEXT_MAX_UTF16:
        return rc_invalid_parameter(
            parameter,
            f"Parameter [{parameter}] value is invalid: longer than {TEXT_MAX_UTF16} characters",
        )
    return text


async def _send(request: web.Request, route: str) -> web.Response:
    refused = _guarded(request, with_extension=True)
    if refused is not None:
        return refused
    state = request.app[SIM_STATE]
    parsed = await _read_send_body(request)
    if isinstance(parsed, web.Response):
        return parsed
    body, attachments = parsed

    sender = _phone_of(body.get("from"), "from.phoneNumber")
    if isinstance(sender, web.Response):
        return sender
    recipients_raw = body.get("to")
    if not isinstance(recipients_raw, list) or not recipients_raw:
        return rc_missing_parameter("to")
    recipients: list[str] = []
    for entry in recipients_raw:
        number = _phone_of(entry, "to.phoneNumber")
        if isinstance(number, web.Response):
            return number
        recipients.append(number)
    is_mms = route == "mms" or bool(attachments)
    text = _check_text(body.get("text"), required=not attachments)
    if isinstance(text, web.Response):
        return text
    if len(attachments) > MMS_ATTACHMENTS_MAX:
        return rc_invalid_parameter("attachments", f"At most {MMS_ATTACHMENTS_MAX} attachments")
    if sum(a.size for a in attachments) > MMS_TOTAL_BYTES_MAX:
        return rc_invalid_parameter("attachments", "Attachments exceed 1.5 MB in total")

    message_id = state.next_rc_message_id()
    uri = f"{_extension_uri(request)}/message-store/{message_id}"
    stamp = iso_millis(utcnow())
    conversation = state.rc_conversation_id(sender, ",".join(sorted(recipients)))
    parts: list[dict[str, Any]] = []
    if text:
        parts.append(
            {
                "id": message_id,
                "uri": f"{uri}/content/{message_id}",
                "type": "Text",
                "contentType": "text/plain",
            }
        )
    for attachment in attachments:
        part_id = state.next_rc_message_id()
        parts.append(
            {
                "id": part_id,
                "uri": f"{uri}/content/{part_id}",
                "type": "MmsAttachment",
                "contentType": attachment.content_type,
                "fileName": attachment.filename,
                "size": attachment.size,
            }
        )
    record: dict[str, Any] = {
        "uri": uri,
        "id": message_id,
        "to": [{"phoneNumber": number} for number in recipients],
        "from": {"phoneNumber": sender},
        "type": "MMS" if is_mms else "SMS",
        "creationTime": stamp,
        "readStatus": "Read",
        "priority": "Normal",
        "attachments": parts,
        "direction": "Outbound",
        "availability": "Alive",
        "subject": text,
        "messageStatus": "Queued",
        "smsSendingAttemptsCount": 1,
        "conversationId": conversation,
        "conversation": {
            "id": str(conversation),
            "uri": f"{origin_of(request)}{_V1}/conversation/{conversation}",
        },
        "lastModifiedTime": stamp,
    }
    state.rc_messages[str(message_id)] = record
    media = tuple(a.filename for a in attachments)
    for number in recipients:
        state.deliver(
            provider="ringcentral",
            api=route,
            message_id=str(message_id),
            from_=sender,
            to=number,
            text=text,
            media=media,
        )
    return json_reply(record, provider="ringcentral")


async def send_sms(request: web.Request) -> web.Response:
    return await _send(request, "sms")


async def send_mms(request: web.Request) -> web.Response:
    return await _send(request, "mms")


async def get_message(request: web.Request) -> web.Response:
    refused = _guarded(request, with_extension=True)
    if refused is not None:
        return refused
    record = request.app[SIM_STATE].rc_messages.get(request.match_info["message_id"])
    if record is None:
        return rc_error(
            404, "CMN-102", "Resource for parameter [messageId] is not found", parameter="messageId"
        )
    # Delivery is instant in the simulator: by the time anyone asks, it has arrived.
    return json_reply({**record, "messageStatus": "Delivered"}, provider="ringcentral")


async def list_messages(request: web.Request) -> web.Response:
    """The message store: ``direction``, ``messageType``, ``dateFrom`` (ISO) and ``perPage``
    filters, newest first, one page."""
    refused = _guarded(request, with_extension=True)
    if refused is not None:
        return refused
    query = request.query
    direction = query.get("direction")
    kind = query.get("messageType")
    since = query.get("dateFrom", "")
    try:
        per_page = max(1, min(1000, int(query.get("perPage", "100"))))
    except ValueError:
        return rc_error(400, "CMN-101", "Parameter [perPage] value is invalid", parameter="perPage")
    records = [
        {**record, "messageStatus": "Delivered"}
        for record in reversed(request.app[SIM_STATE].rc_messages.values())
        if (direction is None or record["direction"] == direction)
        and (kind is None or record["type"] == kind)
        # Both are ISO 8601 in UTC with the same layout, so they compare as strings.
        and record["creationTime"] >= since
    ][:per_page]
    return json_reply(
        {"records": records, "paging": {"page": 1, "perPage": per_page}},
        provider="ringcentral",
    )


async def create_batch(request: web.Request) -> web.Response:
    """A2P batch: ``{from, text?, messages: [{to: [number], text?}]}``.

    A recipient that is not a plausible number lands in ``rejected`` (with its message's
    index) instead of failing the batch; every other recipient is delivered.
    """
    refused = _guarded(request, with_extension=False)
    if refused is not None:
        return refused
    state = request.app[SIM_STATE]
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    sender = body.get("from")
    if not sender:
        return rc_missing_parameter("from")
    if not isinstance(sender, str) or not plausible_number(sender):
        return rc_invalid_parameter("from")
    batch_text = body.get("text")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return rc_missing_parameter("messages")

    planned: list[tuple[int, str, str]] = []
    rejected: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return rc_invalid_parameter(f"messages[{index}]")
        recipients = message.get("to")
        if not isinstance(recipients, list) or not recipients:
            return rc_missing_parameter(f"messages[{index}].to")
        text = _check_text(
            message.get("text", batch_text), required=True, parameter=f"messages[{index}].text"
        )
        if isinstance(text, web.Response):
            return text
        for number in recipients:
            if isinstance(number, str) and plausible_number(number):
                planned.append((index, number, text))
            else:
                rejected.append(
                    {
                        "index": index,
                        "to": [number],
                        "errorCode": "SMS-RC-410",
                        "description": "The recipient number is invalid",
                    }
                )

    batch_id = new_uuid()
    stamp = iso_millis(utcnow())
    for _index, number, text in planned:
        state.deliver(
            provider="ringcentral",
            api="a2p-batch",
            message_id=batch_id,
            from_=sender,
            to=number,
            text=text,
        )
    record: dict[str, Any] = {
        "id": batch_id,
        "from": sender,
        "batchSize": len(messages),
        "processedCount": 0,
        "status": "Processing",
        "creationTime": stamp,
        "lastModifiedTime": stamp,
        "rejected": rejected,
        "cost": 0.0,
    }
    state.rc_batches[batch_id] = record
    return json_reply(record, provider="ringcentral")


async def get_batch(request: web.Request) -> web.Response:
    refused = _guarded(request, with_extension=False)
    if refused is not None:
        return refused
    record = request.app[SIM_STATE].rc_batches.get(request.match_info["batch_id"])
    if record is None:
        return rc_error(
            404, "CMN-102", "Resource for parameter [batchId] is not found", parameter="batchId"
        )
    done = {**record, "status": "Completed", "processedCount": record["batchSize"]}
    return json_reply(done, provider="ringcentral")


def add_routes(router: web.UrlDispatcher) -> None:
    account = _V1 + "/account/{account_id}"
    extension = account + "/extension/{extension_id}"
    router.add_post("/restapi/oauth/token", oauth_token)
    router.add_post("/restapi/oauth/revoke", oauth_revoke)
    router.add_get(account, get_account)
    router.add_get(extension, get_extension)
    router.add_post(extension + "/sms", send_sms)
    router.add_post(extension + "/mms", send_mms)
    router.add_get(extension + "/message-store", list_messages)
    router.add_get(extension + "/message-store/{message_id}", get_message)
    router.add_post(account + "/a2p-sms/batches", create_batch)
    router.add_get(account + "/a2p-sms/batches/{batch_id}", get_batch)
