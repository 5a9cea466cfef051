"""Simulated RingCentral WebHook subscriptions (``/restapi/v1.0/subscription``).

Contracts worth knowing:

- Every route needs the same bearer token as the rest of the simulated RingCentral API.
- ``POST /restapi/v1.0/subscription`` ``{"eventFilters": [...], "deliveryMode":
  {"transportType": "WebHook", "address": url, "verificationToken"?: str}, "expiresIn"?:
  seconds}``. Before answering, the simulator performs RingCentral's validation handshake: a
  ``POST`` to ``address`` with an empty body and a ``Validation-Token: <random>`` header. The
  subscription is created only if the address answers **200 within 3 s**, echoes
  ``Validation-Token`` with the same value, and the whole reply (status line + headers as
  received + body) is at most **1024 bytes**; otherwise 400 ``{"errorCode": "SUB-525",
  "message": "WebHook server response is invalid", "errors": [{"errorCode": "SUB-525",
  "message": <the simulator's reason>, "parameterName": "deliveryMode.address"}]}``.
- ``expiresIn`` defaults to 604800 (7 days); anything from 1 s (so tests can watch a
  subscription expire; the real platform's minimum is higher) to 315360000 is accepted.
- The record: ``{uri, id, creationTime, status: "Active"|"Expired", eventFilters,
  expirationTime, expiresIn (seconds left), deliveryMode: {transportType, address,
  encryption: false}}``. Event filters come back in full form (``/restapi/v1.0`` prefix, ``~``
  replaced by the account and extension ids). The verification token is not echoed back.
- ``GET`` (``{"uri", "records": [...]}``), ``GET /{id}``, ``PUT /{id}`` (replaces the given
  fields and restarts the lifetime with the new or the previous ``expiresIn``; a changed
  ``address`` is validated again), ``POST /{id}/renew`` (restarts the lifetime; an expired
  subscription can be renewed), ``DELETE /{id}`` (204). Unknown ids answer 404 ``CMN-102``.
- HTTP addresses are accepted (the real platform requires HTTPS with a trusted certificate).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.carriersim.rc_api import bearer_session, origin_of, read_json_object
from gateway.carriersim.state import (
    SIM_STATE,
    RcSubscription,
    SimCredentials,
    SimState,
    iso_millis,
    new_uuid,
    now_seconds,
    utcnow,
)
from gateway.carriersim.wire import json_reply, rc_error, rc_invalid_parameter, rc_missing_parameter

SUBSCRIPTION_PATH = "/restapi/v1.0/subscription"
EXPIRES_IN_DEFAULT = 604_800
EXPIRES_IN_MAX = 315_360_000
VALIDATION_TIMEOUT_SECONDS = 3.0
VALIDATION_REPLY_MAX_BYTES = 1024
RC_USER_AGENT = "RingCentral-WebHook (Stopgate carrier simulator)"
_V1 = "/restapi/v1.0"
# The instant-SMS event, in full form, with and without its type filter.
_INSTANT = "/message-store/instant"


# ---- event filters -----------------------------------------------------------------------


def expand_filter(event_filter: str, creds: SimCredentials) -> str:
    """The full form RingCentral answers with: ``/restapi/v1.0`` prefix, ``~`` → ids."""
    path, question, query = event_filter.strip().partition("?")
    if not path.startswith(_V1 + "/"):
        path = _V1 + ("" if path.startswith("/") else "/") + path
    segments = path.split("/")
    for index in range(len(segments) - 1):
        if segments[index] == "account" and segments[index + 1] == "~":
            segments[index + 1] = creds.rc_account_id
        if segments[index] == "extension" and segments[index + 1] == "~":
            segments[index + 1] = creds.rc_extension_id
    return "/".join(segments) + question + query


def instant_sms_event(creds: SimCredentials) -> str:
    """The ``event`` of an inbound-SMS notification for the simulator's one extension."""
    return (
        f"{_V1}/account/{creds.rc_account_id}/extension/{creds.rc_extension_id}{_INSTANT}?type=SMS"
    )


def wants_instant_sms(subscription: RcSubscription, creds: SimCredentials) -> bool:
    """Whether one of the subscription's filters covers inbound SMS of our extension."""
    base = f"{_V1}/account/{creds.rc_account_id}/extension/{creds.rc_extension_id}{_INSTANT}"
    for event_filter in subscription.event_filters:
        path, _, query = expand_filter(event_filter, creds).partition("?")
        if path != base:
            continue
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        if params.get("type", "SMS") == "SMS":
            return True
    return False


def subscriptions_for_inbound_sms(state: SimState) -> list[RcSubscription]:
    """Active subscriptions that get an inbound SMS, newest first."""
    now = now_seconds()
    matching = [
        sub
        for sub in state.rc_subscriptions.values()
        if sub.active(now) and wants_instant_sms(sub, state.credentials)
    ]
    return list(reversed(matching))


# ---- the validation handshake ------------------------------------------------------------


async def read_capped(reply: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, read until its end or until more than ``cap`` bytes have arrived."""
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = await reply.content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def reply_size(reply: aiohttp.ClientResponse, body: bytes) -> int:
    """Bytes of a reply as far as the client can see them: status line, headers, body.

    Chunked framing and the exact whitespace of the headers are not visible through
    aiohttp; the body is counted as received (``auto_decompress`` is off).
    """
    http = reply.version
    version = "HTTP/1.1" if http is None else f"HTTP/{http.major}.{http.minor}"
    status_line = f"{version} {reply.status} {reply.reason or ''}\r\n"
    headers = sum(len(name) + 2 + len(value) + 2 for name, value in reply.raw_headers)
    return len(status_line.encode("latin-1", "replace")) + headers + 2 + len(body)


async def validate_address(address: str) -> str | None:
    """RingCentral's handshake against ``address``: None if it passed, else the reason."""
    token = new_uuid()
    headers = {"Validation-Token": token, "User-Agent": RC_USER_AGENT}
    limit = aiohttp.ClientTimeout(total=VALIDATION_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=limit, auto_decompress=False) as session,
            # An empty body ("Content-Length: 0") and no Content-Type, which aiohttp would
            # otherwise add as application/octet-stream.
            session.post(
                address,
                headers=headers,
                skip_auto_headers=("Content-Type",),
                allow_redirects=False,
            ) as reply,
        ):
            body = await read_capped(reply, VALIDATION_REPLY_MAX_BYTES)
            size = reply_size(reply, body)
            echoed = reply.headers.get("Validation-Token")
            status = reply.status
    except TimeoutError:
        return f"WebHook did not answer within {VALIDATION_TIMEOUT_SECONDS:g} s"
    except aiohttp.ClientError as exc:
        return f"WebHook is not reachable: {exc!r}"
    if status != 200:
        return f"WebHook answered HTTP {status}; 200 is required"
    if echoed is None:
        return "Validation-Token header is missing from the WebHook response"
    if echoed != token:
        return "Validation-Token header of the WebHook response does not match the request"
    if size > VALIDATION_REPLY_MAX_BYTES:
        return (
            f"WebHook response is {size} bytes with headers; "
            f"at most {VALIDATION_REPLY_MAX_BYTES} are allowed"
        )
    return None


def _handshake_failed(reason: str) -> web.Response:
    return rc_error(
        400,
        "SUB-525",
        "WebHook server response is invalid",
        parameter="deliveryMode.address",
        inner_message=reason,
    )


# ---- request bodies ----------------------------------------------------------------------


def _event_filters(raw: Any) -> list[str] | web.Response:
    if raw is None or raw == []:
        return rc_missing_parameter("eventFilters")
    if not isinstance(raw, list) or not all(isinstance(f, str) and f.strip() for f in raw):
        return rc_invalid_parameter("eventFilters")
    return [f.strip() for f in raw]


def _delivery_mode(raw: Any) -> tuple[str, str | None] | web.Response:
    """``(address, verificationToken)`` of a WebHook delivery mode."""
    if not isinstance(raw, dict):
        return rc_missing_parameter("deliveryMode")
    transport = raw.get("transportType")
    if transport is None:
        return rc_missing_parameter("deliveryMode.transportType")
    if transport != "WebHook":
        return rc_invalid_parameter(
            "deliveryMode.transportType",
            "Parameter [deliveryMode.transportType] value is invalid: "
            "the simulator only delivers WebHook subscriptions",
        )
    address = raw.get("address")
    if not address:
        return rc_missing_parameter("deliveryMode.address")
    if not isinstance(address, str):
        return rc_invalid_parameter("deliveryMode.address")
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return rc_invalid_parameter("deliveryMode.address")
    token = raw.get("verificationToken")
    if token is not None and not isinstance(token, str):
        return rc_invalid_parameter("deliveryMode.verificationToken")
    return address, token or None


def _expires_in(raw: Any) -> int | web.Response:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= EXPIRES_IN_MAX:
        return rc_invalid_parameter(
            "expiresIn",
            f"Parameter [expiresIn] value is invalid: an integer from 1 to {EXPIRES_IN_MAX}",
        )
    return raw


# ---- records -----------------------------------------------------------------------------


def _record(request: web.Request, sub: RcSubscription) -> dict[str, Any]:
    now = now_seconds()
    return {
        "uri": f"{origin_of(request)}{SUBSCRIPTION_PATH}/{sub.id}",
        "id": sub.id,
        "creationTime": iso_millis(sub.created_at),
        "status": "Active" if sub.active(now) else "Expired",
        "eventFilters": list(sub.event_filters),
        "expirationTime": iso_millis(datetime.fromtimestamp(sub.expires_at, UTC)),
        "expiresIn": max(0, round(sub.expires_at - now)),
        "deliveryMode": {
            "transportType": "WebHook",
            "address": sub.address,
            "encryption": False,
        },
    }


def _not_found() -> web.Response:
    return rc_error(
        404,
        "CMN-102",
        "Resource for parameter [subscriptionId] is not found",
        parameter="subscriptionId",
    )


def _lookup(request: web.Request) -> RcSubscription | web.Response:
    refused = bearer_session(request)
    if isinstance(refused, web.Response):
        return refused
    sub = request.app[SIM_STATE].rc_subscriptions.get(request.match_info["subscription_id"])
    return _not_found() if sub is None else sub


# ---- routes ------------------------------------------------------------------------------


async def create_subscription(request: web.Request) -> web.Response:
    refused = bearer_session(request)
    if isinstance(refused, web.Response):
        return refused
    state = request.app[SIM_STATE]
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    filters = _event_filters(body.get("eventFilters"))
    if isinstance(filters, web.Response):
        return filters
    mode = _delivery_mode(body.get("deliveryMode"))
    if isinstance(mode, web.Response):
        return mode
    expires_in = _expires_in(body.get("expiresIn", EXPIRES_IN_DEFAULT))
    if isinstance(expires_in, web.Response):
        return expires_in
    address, token = mode
    reason = await validate_address(address)
    if reason is not None:
        return _handshake_failed(reason)
    now = now_seconds()
    sub = RcSubscription(
        id=new_uuid(),
        event_filters=[expand_filter(f, state.credentials) for f in filters],
        address=address,
        verification_token=token,
        expires_in=expires_in,
        created_at=utcnow(),
        expires_at=now + expires_in,
    )
    state.rc_subscriptions[sub.id] = sub
    return json_reply(_record(request, sub), provider="ringcentral")


async def list_subscriptions(request: web.Request) -> web.Response:
    refused = bearer_session(request)
    if isinstance(refused, web.Response):
        return refused
    records = [_record(request, sub) for sub in request.app[SIM_STATE].rc_subscriptions.values()]
    body = {"uri": f"{origin_of(request)}{SUBSCRIPTION_PATH}", "records": records}
    return json_reply(body, provider="ringcentral")


async def get_subscription(request: web.Request) -> web.Response:
    sub = _lookup(request)
    if isinstance(sub, web.Response):
        return sub
    return json_reply(_record(request, sub), provider="ringcentral")


async def update_subscription(request: web.Request) -> web.Response:
    sub = _lookup(request)
    if isinstance(sub, web.Response):
        return sub
    creds = request.app[SIM_STATE].credentials
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    filters = sub.event_filters
    if "eventFilters" in body:
        given = _event_filters(body["eventFilters"])
        if isinstance(given, web.Response):
            return given
        filters = [expand_filter(f, creds) for f in given]
    address, token = sub.address, sub.verification_token
    if "deliveryMode" in body:
        mode = _delivery_mode(body["deliveryMode"])
        if isinstance(mode, web.Response):
            return mode
        address, token = mode
    expires_in: int | None = None
    if "expiresIn" in body:
        checked = _expires_in(body["expiresIn"])
        if isinstance(checked, web.Response):
            return checked
        expires_in = checked
    if address != sub.address:
        reason = await validate_address(address)
        if reason is not None:
            return _handshake_failed(reason)
    sub.event_filters, sub.address, sub.verification_token = filters, address, token
    sub.renew(now_seconds(), expires_in)
    return json_reply(_record(request, sub), provider="ringcentral")


async def renew_subscription(request: web.Request) -> web.Response:
    sub = _lookup(request)
    if isinstance(sub, web.Response):
        return sub
    sub.renew(now_seconds())
    return json_reply(_record(request, sub), provider="ringcentral")


async def delete_subscription(request: web.Request) -> web.Response:
    sub = _lookup(request)
    if isinstance(sub, web.Response):
        return sub
    del request.app[SIM_STATE].rc_subscriptions[sub.id]
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    one = SUBSCRIPTION_PATH + "/{subscription_id}"
    router.add_post(SUBSCRIPTION_PATH, create_subscription)
    router.add_get(SUBSCRIPTION_PATH, list_subscriptions)
    router.add_get(one, get_subscription)
    router.add_put(one, update_subscription)
    router.add_delete(one, delete_subscription)
    router.add_post(one + "/renew", renew_subscription)
