"""The inbound path: carrier webhook -> verify -> parse -> keywords -> durable consent change ->
acknowledge (with the confirmation, for Twilio) -> replies and forwards from the outbox.

Durable first: a webhook is acknowledged only after its consent change is committed to the
store, or - while the store is down - appended and fsync'd to the local spool. The same provider
message delivered again is acknowledged and has no second effect.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import hdrs, web

from gateway.config import Settings, matches_any
from gateway.consent_index import ConsentIndex
from gateway.dialects import ringcentral as rc_dialect
from gateway.dialects import twilio as twilio_dialect
from gateway.dialects.base import InboundMessage, media_type, refuse_foreign_charset
from gateway.errors import BadRequest, StoreUnavailable
from gateway.events import follow_up_for
from gateway.keys import CLIENT, INDEX, KEYWORDS, METRICS, OUTBOX_WAKE, SETTINGS, SPOOL
from gateway.log_lines import log_fields
from gateway.outbox import FORWARD, RINGCENTRAL_REPLY, forward_request
from gateway.spool import SpooledEvent
from gateway.store.base import ConsentChange, OutboxItem, ReviewEntry
from policy.consent import OptStatus, Source
from policy.keywords import Classification, KeywordClass, KeywordLists
from policy.numbers import (
    AddressProblem,
    InvalidAddress,
    Role,
    business_key,
    customer_key,
    is_service_sid,
)
from policy.replies import CLARIFY, ReplyTemplates
from policy.revocation import Outcome, Revocation, classify_revocation

log = logging.getLogger("stopgate.inbound")

KEYWORD_HEADER = "X-Stopgate-Keyword"
REVOCATION_HEADER = "X-Stopgate-Revocation"
"""The plain-language outcome (``revoke``, ``unclear``, ``none``) of a message with no keyword."""
REVIEW_TEXT_LIMIT = 1600
_CONSENT_CLASSES = {
    KeywordClass.OPT_OUT: OptStatus.OPT_OUT,
    KeywordClass.OPT_OUT_ALL: OptStatus.OPT_OUT,
    KeywordClass.OPT_IN: OptStatus.OPT_IN,
}


class WebhookRequest(Protocol):
    """What a webhook handler reads of its request: an aiohttp ``web.Request``, or the front's
    :class:`gateway.front.FrontRequest` for a webhook it read whole."""

    @property
    def app(self) -> web.Application: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive, as received."""

    @property
    def raw_path(self) -> str:
        """The request target as received: path and query, percent-encoding kept."""

    @property
    def scheme(self) -> str: ...

    @property
    def host(self) -> str: ...

    async def read(self) -> bytes: ...


Webhook = Callable[[WebhookRequest], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class InboundResult:
    classification: Classification
    duplicate: bool
    reply: str | None
    """The confirmation to give the customer (None: no reply from Stopgate)."""
    forward_id: int | None
    """The outbox entry forwarding this event to the app, if any."""
    revocation: Revocation | None = None
    """The plain-language reading, when the message was no keyword and the classifier ran."""


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": {"reason": reason, "message": message}}, status=status)


def _consent_changes(
    message: InboundMessage,
    classification: Classification,
    customer: str,
    businesses: Sequence[str],
    index: ConsentIndex,
    settings: Settings,
    service: str | None,
    reason: str,
) -> list[ConsentChange]:
    status = _CONSENT_CLASSES.get(classification.klass)
    if status is None:
        return []
    note = f"{reason} via {message.provider} {message.message_id}"
    scopes = index.keyword_scopes(
        status,
        businesses,
        service,
        everywhere=(
            classification.klass is KeywordClass.OPT_OUT_ALL or settings.opt_out_scope == "all"
        ),
    )
    return [
        ConsentChange(
            scope,
            customer,
            status,
            Source.RECIPIENT,
            actor=f"recipient:{message.provider}",
            note=note,
        )
        for scope in scopes
    ]


def _read_plain_language(
    text: str, lists: KeywordLists, classification: Classification
) -> tuple[Classification, Revocation]:
    """The plain-language reading of a message with no keyword; a ``revoke`` makes it an
    opt-out exactly as the STOP keyword is (the language of the rule chooses the reply)."""
    revocation = classify_revocation(text, lists)
    if revocation.outcome is Outcome.REVOKE:
        classification = Classification(
            KeywordClass.OPT_OUT, None, revocation.language or "en", classification.normalised
        )
    return classification, revocation


async def _flag_for_review(
    app: web.Application,
    message: InboundMessage,
    customer: str,
    business: str,
    revocation: Revocation,
    received_us: int,
) -> ReviewEntry | None:
    """Keep an unclear message for compliance review. The entry says whether this message gets
    the one clarifying text; None when the message was flagged before (delivered again) or the
    store cannot take it now (no clarification then: a second text must not go out unrecorded).
    """
    settings = app[SETTINGS]
    entry = ReviewEntry(
        0,
        received_us,
        message.provider,
        message.message_id,
        business,
        customer,
        message.text[:REVIEW_TEXT_LIMIT],
        revocation.rule or "",
        revocation.explanation,
        revocation.language or "en",
    )
    since_us = received_us - int(settings.clarification_window * 1e6)
    try:
        return await app[INDEX].store.add_review(entry, since_us)
    except StoreUnavailable as exc:
        log.warning("unclear message %s not flagged for review: %s", message.message_id, exc)
        return None


async def handle_inbound(
    app: web.Application, message: InboundMessage, forward: dict[str, Any] | None
) -> InboundResult:
    """Record one inbound message durably and queue its follow-up work."""
    settings = app[SETTINGS]
    index = app[INDEX]
    metrics = app[METRICS]
    region = settings.default_region
    received_us = time.time_ns() // 1000
    try:
        customer: str | None = customer_key(message.sender, region)
        businesses = [business_key(r, region) for r in message.recipients]
    except InvalidAddress as exc:
        # Not a customer we can key (e.g. a short code writing to us): no consent change, but
        # the app still gets the message.
        log.warning("inbound %s: %s", message.message_id, exc)
        customer, businesses = None, []
    service: str | None = None
    if message.service and businesses:
        try:
            service = business_key(message.service, region)
            if not is_service_sid(service):
                raise InvalidAddress(AddressProblem.UNPARSEABLE, message.service, Role.BUSINESS)
            learned = [b for b in businesses if index.services.get(b) != service]
            if learned:
                # Store first: the change feed reloads the mapping from the store.
                await app[INDEX].store.set_service_numbers(service, learned)
                index.services.update(dict.fromkeys(learned, service))
        except InvalidAddress as exc:
            service = None
            log.warning("messaging service of %s ignored: %s", message.message_id, exc)
        except StoreUnavailable as exc:
            log.warning("messaging service of %s not learned: %s", message.message_id, exc)
    lists = app[KEYWORDS].for_scope(message.provider, businesses[0] if businesses else None)
    classification = app[KEYWORDS].classify(message.text, lists)
    reason = f"keyword {classification.keyword!r}"
    revocation: Revocation | None = None
    if (
        classification.klass is KeywordClass.NONE
        and settings.plain_language
        and customer is not None
        and businesses
    ):
        classification, revocation = _read_plain_language(message.text, lists, classification)
        metrics.inbound_plain_language.labels(
            revocation.outcome.value, revocation.language or ""
        ).inc()
        if revocation.outcome is Outcome.REVOKE:
            reason = f"plain-language: {revocation.rule} ({revocation.phrase!r})"
    changes = (
        _consent_changes(
            message, classification, customer, businesses, index, settings, service, reason
        )
        if customer is not None
        else []
    )

    reply = None
    templates = ReplyTemplates(
        settings.brand_name, settings.support_contact, settings.reply_templates
    )
    if (
        classification.klass is not KeywordClass.NONE
        and settings.replies == "stopgate"
        and not message.carrier_handled
    ):
        reply = templates.text(classification.klass.value, classification.language)
    if revocation is not None and revocation.outcome is Outcome.UNCLEAR and customer is not None:
        review = await _flag_for_review(
            app, message, customer, businesses[0], revocation, received_us
        )
        if review is not None and review.clarified and settings.replies == "stopgate":
            reply = templates.text(CLARIFY, revocation.language)

    work: list[OutboxItem] = []
    if reply is not None and message.provider == "ringcentral" and businesses:
        work.append(
            OutboxItem(
                RINGCENTRAL_REPLY,
                json.dumps({"from": message.recipients[0], "to": message.sender, "text": reply}),
                not_before_us=received_us,
                deadline_us=received_us + int(settings.confirmation_window * 1e6),
            )
        )
    forward_position = None
    if forward is not None:
        forward_position = len(work)
        # A Twilio forward is first tried inline (its TwiML answer is relayed); the outbox
        # takes over only after that attempt's deadline.
        delay = settings.app_reply_deadline + 1 if message.provider == "twilio" else 0
        work.append(
            OutboxItem(
                FORWARD,
                json.dumps(
                    {
                        **forward,
                        "keyword": classification.klass.value,
                        "revocation": revocation.outcome.value if revocation else None,
                    }
                ),
                not_before_us=received_us + int(delay * 1e6),
                deadline_us=received_us + int(settings.forward_window * 1e6),
            )
        )

    try:
        outcome = await index.store.record_inbound(
            message.provider,
            message.message_id,
            received_us,
            changes,
            work,
            follow_up_for(settings),
        )
    except StoreUnavailable:
        # Live writes are stamped by the store's clock; a spooled change keeps its receipt
        # time, so its replay never outranks a decision made after it.
        spooled = tuple(dataclasses.replace(c, modified_us=received_us) for c in changes)
        event = SpooledEvent(
            message.provider, message.message_id, received_us, spooled, tuple(work)
        )
        await app[SPOOL].append(event)  # OSError -> the caller answers 503
        index.add_pending(event.records())
        metrics.inbound_spooled.inc()
        metrics.inbound_keywords.labels(
            classification.klass.value, classification.language or ""
        ).inc()
        log.warning(
            "store down: inbound message spooled",
            extra=_decision(
                message, classification, customer, businesses, "spooled", changes, revocation
            ),
        )
        return InboundResult(classification, False, reply, None, revocation)
    finally:
        index.invalidate((c.from_key, c.to_key) for c in changes)

    metrics.inbound_keywords.labels(classification.klass.value, classification.language or "").inc()
    if outcome.duplicate:
        metrics.inbound_duplicates.inc()
        log.info(
            "inbound message delivered again: no second effect",
            extra=_decision(
                message, classification, customer, businesses, "duplicate", changes, revocation
            ),
        )
        return InboundResult(classification, True, None, None, revocation)
    # Consent changes (and their count, stopgate_consent_changes_total) are logged by the
    # store wrapper, which also sees spooled events when they are replayed. (log_fields: a STOP
    # burst writes this line per message.)
    log_fields(
        log,
        logging.INFO,
        "inbound message",
        _decision(message, classification, customer, businesses, "recorded", changes, revocation),
    )
    app[OUTBOX_WAKE].set()
    forward_id = outcome.outbox_ids[forward_position] if forward_position is not None else None
    return InboundResult(classification, False, reply, forward_id, revocation)


def _decision(
    message: InboundMessage,
    classification: Classification,
    customer: str | None,
    businesses: Sequence[str],
    outcome: str,
    changes: Sequence[ConsentChange],
    revocation: Revocation | None = None,
) -> dict[str, Any]:
    """The fields of an inbound decision's log line (no message text: only its keyword, and
    for a message with no keyword the plain-language outcome and the rule that decided it)."""
    plain = {}
    if revocation is not None:
        plain = {"plain_language": revocation.outcome.value, "rule": revocation.rule or ""}
    return {
        **plain,
        "event": "inbound",
        "provider": message.provider,
        "message_id": message.message_id,
        "from": customer if customer is not None else message.sender,
        "to": list(businesses) or list(message.recipients),
        "keyword": classification.klass.value,
        "language": classification.language or "",
        "decision": outcome,
        "changes": len(changes),
    }


def public_url(request: WebhookRequest, settings: Settings) -> str:
    """The URL the carrier called: ``STOPGATE_PUBLIC_URL`` + path and query behind a load
    balancer, else the URL as received (scheme, ``Host``, path, query)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.raw_path
    return f"{request.scheme}://{request.host}{request.raw_path}"


async def _read(request: WebhookRequest) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest("body-too-large", "webhook body over the limit", status=413) from None


async def twilio_webhook(request: WebhookRequest) -> web.Response:
    settings = request.app[SETTINGS]
    token = settings.twilio_auth_token
    if token is None:
        return _error(
            503, "twilio-webhook-disabled", "STOPGATE_TWILIO_AUTH_TOKEN is not set: cannot verify"
        )
    try:
        body = await _read(request)
        refuse_foreign_charset(request.headers.get(hdrs.CONTENT_TYPE, ""))
        content_type, _ = media_type(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if content_type == "application/json":
            document = json.loads(body)
            if not isinstance(document, dict):
                raise BadRequest("malformed-webhook", "JSON webhook must be an object")
            params = [(str(k), str(v)) for k, v in document.items()]
            signed: list[tuple[str, str]] = []
        elif content_type == "application/x-www-form-urlencoded":
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            signed = params
        else:
            raise BadRequest("unsupported-content-type", f"unexpected {content_type}", status=415)
    except (ValueError, UnicodeDecodeError, LookupError, RecursionError):
        return _error(400, "malformed-webhook", "the webhook body cannot be decoded")
    except BadRequest as exc:
        return _error(exc.status, exc.reason, exc.message)
    presented = request.headers.get("X-Twilio-Signature", "")
    url = public_url(request, settings)
    valid = False
    for candidate in settings.twilio_auth_tokens():
        # Each valid token is tried (primary and secondary while a token is rotated).
        valid = twilio_dialect.verify_signature(candidate, url, signed, presented, body) | valid
    if not presented or not valid:
        request.app[METRICS].webhook_rejected.labels("twilio").inc()
        return _error(403, "bad-signature", "X-Twilio-Signature does not match")
    try:
        message = twilio_dialect.parse_inbound(params)
    except BadRequest as exc:
        return _error(exc.status, exc.reason, exc.message)

    forward = None
    if settings.twilio_app_webhook:
        forward = {
            "provider": "twilio",
            "url": settings.twilio_app_webhook,
            "content_type": request.headers.get(hdrs.CONTENT_TYPE, ""),
            "body": base64.b64encode(body).decode(),
        }
    try:
        result = await handle_inbound(request.app, message, forward)
    except OSError:
        return _error(503, "store-and-spool-unavailable", "the change could not be recorded")

    replies = [result.reply] if result.reply else []
    headers = {KEYWORD_HEADER: result.classification.klass.value}
    if result.revocation is not None:
        headers[REVOCATION_HEADER] = result.revocation.outcome.value
    if (
        not replies
        and result.forward_id is not None
        and result.classification.klass is KeywordClass.NONE
    ):
        relayed = await _relay_app_twiml(request.app, result.forward_id, forward or {})
        if relayed is not None:
            return web.Response(body=relayed, content_type="text/xml", headers=headers)
    return web.Response(
        text=twilio_dialect.twiml(replies), content_type="text/xml", headers=headers
    )


async def _relay_app_twiml(
    app: web.Application, entry_id: int, forward: dict[str, Any]
) -> bytes | None:
    """Try the app once, inline, within the deadline; its TwiML answer is Stopgate's answer."""
    settings = app[SETTINGS]
    try:
        status, body = await asyncio.wait_for(
            forward_request(app[CLIENT], settings, {**forward, "keyword": "none"}),
            timeout=settings.app_reply_deadline,
        )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.info("app did not answer in time (%s); the outbox will deliver", type(exc).__name__)
        return None
    if 200 <= status < 300:
        # Delivered: if this cannot be recorded, the outbox delivers once more (at least once).
        with contextlib.suppress(StoreUnavailable):
            await app[INDEX].store.outbox_done(entry_id)
        return body
    return None


async def ringcentral_webhook(request: WebhookRequest) -> web.Response:
    settings = request.app[SETTINGS]
    expected = settings.ringcentral_verification_token
    validation = request.headers.get("Validation-Token")
    try:
        body = await _read(request)
    except BadRequest as exc:
        return _error(exc.status, exc.reason, exc.message)
    if validation is not None and not body.strip():
        # The subscription handshake: echo the token at once, in a tiny reply (the platform
        # allows 3 s and 1024 bytes with headers).
        return web.Response(status=200, headers={"Validation-Token": validation})
    if expected is None:
        return _error(
            503,
            "ringcentral-webhook-disabled",
            "STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN is not set: cannot verify",
        )
    presented = request.headers.get("Verification-Token") or validation or ""
    if not presented or not matches_any(presented, settings.ringcentral_verification_tokens()):
        request.app[METRICS].webhook_rejected.labels("ringcentral").inc()
        return _error(403, "bad-verification-token", "verification token does not match")
    try:
        document = json.loads(body)
        messages = rc_dialect.parse_notification(document)
    except (ValueError, UnicodeDecodeError, LookupError, RecursionError):
        return _error(400, "malformed-webhook", "the notification is not JSON")
    except BadRequest as exc:
        return _error(exc.status, exc.reason, exc.message)
    forward = None
    if settings.ringcentral_app_webhook:
        forward = {
            "provider": "ringcentral",
            "url": settings.ringcentral_app_webhook,
            "content_type": "application/json",
            "body": base64.b64encode(body).decode(),
            "verification_token": presented,
        }
    klass = KeywordClass.NONE.value
    headers: dict[str, str] = {}
    try:
        for message in messages:
            result = await handle_inbound(request.app, message, forward)
            klass = result.classification.klass.value
            if result.revocation is not None:
                headers[REVOCATION_HEADER] = result.revocation.outcome.value
        if not messages:
            # Not an inbound SMS: the carrier's own consent facts are recorded, and the app
            # still gets the event as it came.
            await _record_event(request.app, document, forward, klass)
    except OSError:
        return _error(503, "store-and-spool-unavailable", "the change could not be recorded")
    except StoreUnavailable:
        return _error(503, "store-unavailable", "the event could not be recorded")
    return web.Response(status=200, headers={KEYWORD_HEADER: klass, **headers})


async def _record_event(
    app: web.Application, document: Any, forward: dict[str, Any] | None, klass: str
) -> None:
    settings = app[SETTINGS]
    now_us = time.time_ns() // 1000
    changes: list[ConsentChange] = []
    for fact in rc_dialect.parse_carrier_consent(document):
        try:
            sender = business_key(fact.sender, settings.default_region)
            recipient = customer_key(fact.recipient, settings.default_region)
        except InvalidAddress:
            continue
        changes.append(
            ConsentChange(
                sender,
                recipient,
                OptStatus.OPT_OUT if fact.opted_out else OptStatus.OPT_IN,
                Source.CARRIER,
                actor="carrier:ringcentral",
                note=fact.detail,
            )
        )
    work = []
    if forward is not None:
        work.append(
            OutboxItem(
                FORWARD,
                json.dumps({**forward, "keyword": klass}),
                # Due on arrival, so it takes its turn among what fell due before it.
                not_before_us=now_us,
                deadline_us=now_us + int(settings.forward_window * 1e6),
            )
        )
    if not changes and not work:
        return
    event_id = (
        str(document.get("uuid") or "")
        or hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    )
    index = app[INDEX]
    try:
        await index.store.record_inbound(
            "ringcentral-event", event_id, now_us, changes, work, follow_up_for(settings)
        )
    finally:
        index.invalidate((c.from_key, c.to_key) for c in changes)


WEBHOOKS: dict[str, Webhook] = {
    "/webhooks/twilio": twilio_webhook,
    "/webhooks/ringcentral": ringcentral_webhook,
}
"""The carrier webhook routes: aiohttp's, and the front's for the requests it takes itself."""


def add_routes(app: web.Application) -> None:
    for path, handler in WEBHOOKS.items():
        app.router.add_post(path, handler)
