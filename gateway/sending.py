"""The send path: route -> dialect.parse -> canonicalise -> consent index -> decision ->
refuse in the carrier's shape, or forward (footer applied) and relay the carrier's answer.

Nothing reaches the carrier unless every recipient was decided allowed (or dropped from a batch),
and any failure to decide refuses the send (fail closed).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web

from gateway import schedule, upstream
from gateway.consent_index import ConsentIndex
from gateway.dialects.base import (
    BatchItem,
    Blocked,
    Dialect,
    DialectError,
    ErrorKind,
    ParsedSend,
    SendKind,
    items_without,
)
from gateway.erasure import alias
from gateway.errors import BadRequest, StoreUnavailable, UpstreamTimeout, UpstreamUnreachable
from gateway.events import follow_up_for
from gateway.keys import (
    BLOCKED_LOG,
    CREDENTIALS,
    ERASURE_KEY,
    INDEX,
    METRICS,
    SEND_CLIENT,
    SETTINGS,
)
from gateway.log_lines import log_fields
from gateway.refusals import (
    DECISION_HEADER,
    refuse,
    refuse_bad_request,
    refuse_upstream_failure,
)
from gateway.send_request import RelayedReply, SendRequest
from gateway.store.base import BlockedSend, ConsentChange
from gateway.text import make_storable
from policy.consent import (
    DefaultConsent,
    OptStatus,
    Source,
    applicable_from_keys,
    decide,
    default_for,
)
from policy.footer import FooterDecision, FooterMode, decide_footer
from policy.numbers import (
    WILDCARD,
    InvalidAddress,
    business_key,
    customer_key,
    is_service_sid,
)
from policy.segments import segment_total

log = logging.getLogger("stopgate.send")

SEGMENTS_HEADER = "X-Stopgate-Segments"


@dataclass(slots=True)
class Verdict:
    """The outcome of checking every recipient of a send."""

    sender_key: str
    """The key blocked-log entries and footer state are kept under (number, or service)."""
    allowed: list[str] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    kept_items: list[BatchItem] = field(default_factory=list)
    invalid: list[Blocked] = field(default_factory=list)
    """Batch recipients whose address cannot be keyed: dropped and reported, never sent."""


def _keys(
    parsed: ParsedSend, region: str, index: ConsentIndex
) -> tuple[str | None, tuple[str, ...]]:
    """The sender's key and the ``from`` keys whose records govern this send."""
    try:
        business = business_key(parsed.business, region) if parsed.business else None
    except InvalidAddress as exc:
        raise BadRequest(exc.problem.value, str(exc), parameter="from") from None
    service: str | None = None
    if parsed.service:
        try:
            service = business_key(parsed.service, region)
        except InvalidAddress as exc:
            raise BadRequest(exc.problem.value, str(exc), parameter="MessagingServiceSid") from None
        if not is_service_sid(service):
            raise BadRequest(
                "invalid-service-sid",
                "MessagingServiceSid must be MG followed by 32 hex digits",
                parameter="MessagingServiceSid",
            )
    # A number that belongs to a Messaging Service is bound by the service's opt-outs too, and
    # a number or service of a brand by the brand's.
    from_keys = applicable_from_keys(
        business, service, number_service=index.service_of(business), brand_of=index.brand_of
    )
    return business or service, from_keys


async def _check(
    parsed: ParsedSend,
    index: ConsentIndex,
    region: str,
    default: DefaultConsent,
    erasure_key: bytes,
) -> Verdict:
    sender, from_keys = _keys(parsed, region, index)
    assert sender is not None  # dialects refuse a send with neither from nor service
    if index.defaults:
        default = default_for(from_keys, index.defaults, default)
    verdict = Verdict(sender)
    decisions: dict[str, str | None] = {}

    async def reason_for(raw: str) -> str | None:
        try:
            to_key = customer_key(raw, region)
        except InvalidAddress as exc:
            raise BadRequest(exc.problem.value, str(exc), parameter="to") from None
        if to_key not in decisions:
            # An erased customer who had opted out is kept as a suppression under a keyed hash.
            records, erased = await index.records_many(
                ((to_key, from_keys), (alias(erasure_key, to_key), (WILDCARD,)))
            )
            decision = decide(records + erased, default, await index.suppressions(to_key))
            decisions[to_key] = None if decision.allowed else str(decision.reason)
        return decisions[to_key]

    if parsed.kind is SendKind.BATCH:
        for item in parsed.items:
            kept: list[str] = []
            for raw in item.recipients:
                try:
                    reason = await reason_for(raw)
                except BadRequest as exc:
                    verdict.invalid.append(Blocked(raw, exc.reason, item.index))
                    continue
                if reason is None:
                    kept.append(raw)
                    verdict.allowed.append(raw)
                else:
                    verdict.blocked.append(Blocked(raw, reason, item.index))
            if kept:
                verdict.kept_items.append(BatchItem(item.index, tuple(kept), item.text))
    else:
        for raw in parsed.recipients:
            reason = await reason_for(raw)
            if reason is None:
                verdict.allowed.append(raw)
            else:
                verdict.blocked.append(Blocked(raw, reason))
    return verdict


async def _log_blocked(
    request: SendRequest,
    dialect: Dialect,
    parsed: ParsedSend,
    verdict: Verdict,
    request_id: str,
    prefix: str,
) -> None:
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    texts = {item.index: item.text for item in parsed.items}
    now_us = time.time_ns() // 1000
    entries: list[BlockedSend] = []
    for block in verdict.blocked:
        text = texts.get(block.index) if block.index is not None else None
        text = text if text is not None else parsed.text or ""
        _labelled(metrics.blocked_recipients, dialect.name, prefix + block.reason).inc()
        entries.append(
            BlockedSend(
                at_us=now_us,
                dialect=dialect.name,
                from_key=verdict.sender_key,
                to_key=customer_key(block.recipient, settings.default_region),
                reason=prefix + block.reason,
                request_id=request_id,
                text_length=len(text),
                text_sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
                text=make_storable(text) if settings.blocked_log_text else None,
            )
        )
    try:
        await request.app[BLOCKED_LOG].write(entries)
    except StoreUnavailable:
        # The refusal stands either way; these lines keep the evidence meanwhile (the send's
        # decision line names every recipient too).
        for entry in entries:
            log.error(
                "blocked-send log unavailable: blocked send not recorded in the store",
                extra={
                    "event": "blocked-log-unavailable",
                    "request_id": request_id,
                    "dialect": dialect.name,
                    "from": entry.from_key,
                    "to": entry.to_key,
                    "reason": entry.reason,
                    "text_sha256": entry.text_sha256,
                },
            )


def _refuse_send_parameters_in_query(request: SendRequest) -> None:
    """A carrier may read a send's parameters from the query string too; Stopgate checks the
    body, so a send that carries any of them in its query is refused, not forwarded."""
    names = {name.lower() for name in request.query}
    if names & _SEND_PARAMETERS:
        raise BadRequest(
            "parameters-in-query",
            "send parameters belong in the body, not the query string",
            parameter=sorted(names & _SEND_PARAMETERS)[0],
        )


def _refuse_encoded_body(request: SendRequest) -> None:
    """A send whose body comes with a ``Content-Encoding`` (gzip, …) is refused: the carrier
    would be handed either a body it cannot read or one whose header no longer says what it
    is (aiohttp's server decodes such a body before the route sees it), and no SDK sends one."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING)
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise BadRequest(
            "unsupported-content-encoding",
            f"Content-Encoding {encoding[:40]!r} is not accepted: send the body as it is",
            status=415,
        )


_SEND_PARAMETERS = frozenset(
    {"to", "from", "body", "text", "messagingservicesid", "mediaurl", "messages"}
)


async def _apply_footer(
    request: SendRequest, dialect: Dialect, parsed: ParsedSend, verdict: Verdict
) -> tuple[list[FooterDecision], list[str]]:
    """Add the footer by policy; return the decisions and the recipients now served with
    opt-out instructions (remembered per pair in ``first`` mode once the carrier accepts)."""
    settings = request.app[SETTINGS]
    if settings.footer is FooterMode.OFF:
        return [], []
    store = request.app[INDEX].store
    region = settings.default_region

    async def already_sent(recipients: Sequence[str]) -> bool:
        if settings.footer is not FooterMode.FIRST:
            return False
        for raw in recipients:
            if not await store.footer_sent(verdict.sender_key, customer_key(raw, region)):
                return False
        return True

    decisions: list[FooterDecision] = []
    footed: list[str] = []
    if parsed.kind is SendKind.BATCH:
        items: list[BatchItem] = []
        for item in verdict.kept_items:
            decision = decide_footer(
                item.text if item.text is not None else parsed.text,
                mode=settings.footer,
                footer=settings.footer_text,
                already_sent_to_pair=await already_sent(item.recipients),
                cap=dialect.length_cap,
            )
            decisions.append(decision)
            if decision.pair_served:
                footed.extend(item.recipients)
            if decision.added:
                item = BatchItem(item.index, item.recipients, decision.text)
            items.append(item)
        verdict.kept_items = items
    else:
        decision = decide_footer(
            parsed.text,
            mode=settings.footer,
            footer=settings.footer_text,
            already_sent_to_pair=await already_sent(verdict.allowed),
            cap=dialect.length_cap,
        )
        decisions.append(decision)
        if decision.pair_served:
            footed.extend(verdict.allowed)
        if decision.added:
            dialect.set_text(parsed, decision.text)
    metrics = request.app[METRICS]
    for decision in decisions:
        if decision.added:
            metrics.footer_segments_added.labels(dialect.name).inc(decision.segments_added)
        elif decision.skipped is not None:
            metrics.footer_skipped.labels(dialect.name, decision.skipped.value).inc()
    return decisions, footed


def _segments_header(decisions: Sequence[FooterDecision]) -> str | None:
    if not decisions:
        return None
    if len(decisions) == 1:
        return decisions[0].header_value()
    before = sum(d.before.segments for d in decisions)
    after = sum(d.after.segments for d in decisions)
    return f"{before}->{after}"


@dataclass(slots=True)
class _Trace:
    """What one send's decision line reports, filled in as the send is decided."""

    request_id: str
    dialect: str
    parsed: ParsedSend | None = None
    verdict: Verdict | None = None
    footer: list[FooterDecision] = field(default_factory=list)
    decision: str | None = None
    """Set where the response carries no decision header (credential refusals)."""
    reason: str = ""
    upstream_status: int | None = None


async def handle_send(
    request: SendRequest, dialect: Dialect, kind: SendKind
) -> web.Response | RelayedReply:
    """Decide and answer one send; whatever happens, log one line saying what was decided."""
    request_id = request.headers.get("X-Request-Id") or _request_ids.next()
    trace = _Trace(request_id, dialect.name)
    response: web.Response | RelayedReply | None = None
    try:
        response = await _handle_send(request, dialect, kind, trace)
        return response
    finally:
        _log_decision(trace, response, request.app[SETTINGS].default_region)


@functools.lru_cache(maxsize=1024)
def _labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, memoised: prometheus_client validates and locks on every
    ``labels`` call (microseconds, several per send); the child it returns never changes."""
    return metric.labels(*values)


class _RequestIds:
    """Request ids for sends that came without one: 32 hex digits, a random per-process prefix
    and a counter (a uuid4 per send costs a system call and an object; these need only be
    unique, not unguessable). A forked worker draws a prefix of its own."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def next(self) -> str:
        # 16 hex digits, zero-padded: hex() of the count with a 65th bit set, after "0x1" (a
        # format spec is parsed on every call; compiled, this is a fraction of its cost).
        return self._prefix + hex(next(self._counter) & 0xFFFF_FFFF_FFFF_FFFF | 1 << 64)[3:]


_request_ids = _RequestIds()


def _log_decision(trace: _Trace, response: web.Response | RelayedReply | None, region: str) -> None:
    decision, reason = trace.decision or "error", trace.reason
    if response is None:
        header = None
    elif isinstance(response, RelayedReply):
        header = response.header(DECISION_HEADER)
    else:
        header = response.headers.get(DECISION_HEADER)
    if header == "allowed":
        decision, reason = header, ""
    elif header:
        parts = [part.strip() for part in header.split(";")]
        decision = parts[0]
        reason = next((p[len("reason=") :] for p in parts[1:] if p.startswith("reason=")), "")
    if decision == "error" or reason in (
        "consent-unavailable",
        "upstream-timeout",
        "upstream-unreachable",
    ):
        level = logging.ERROR
    elif trace.upstream_status is not None and trace.upstream_status >= 500:
        level = logging.WARNING
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):
        return
    parsed, verdict = trace.parsed, trace.verdict
    sender: str | None = verdict.sender_key if verdict is not None else None
    recipients: list[str] = []
    if parsed is not None:
        sender = sender or parsed.business or parsed.service
        if parsed.kind is SendKind.BATCH:
            recipients = [r for item in parsed.items for r in item.recipients]
        else:
            recipients = list(parsed.recipients)
    fields: dict[str, Any] = {
        "event": "send",
        "request_id": trace.request_id,
        "dialect": trace.dialect,
        "from": sender,
        "to": [_key_or_raw(r, region) for r in recipients[:_LOGGED_RECIPIENTS]],
        "recipients": len(recipients),
        "decision": decision,
        "reason": reason,
        "segments": _segments_of(parsed, trace.footer),
        "status": response.status if response is not None else None,
    }
    if trace.footer:
        fields["segments_before"] = sum(d.before.segments for d in trace.footer)
    if verdict is not None and verdict.blocked:
        fields["blocked"] = [
            {"to": _key_or_raw(b.recipient, region), "reason": b.reason}
            for b in verdict.blocked[:_LOGGED_RECIPIENTS]
        ]
    if trace.upstream_status is not None:
        fields["upstream_status"] = trace.upstream_status
    log_fields(log, level, "send decided", fields, _decision_members(fields))


_encode_text = json.encoder.encode_basestring  # the JSON encoder's own function for text


def _decision_members(fields: dict[str, Any]) -> str:
    """The decision line's fields as JSON object members: exactly what the JSON encoder writes
    for them (a test holds the two equal), from a template, which costs a fraction of the
    encoder's walk on a line written for every send."""
    sender = fields["from"]
    segments = fields["segments"]
    status = fields["status"]
    to = ",".join([_encode_text(key) for key in fields["to"]])
    text = (
        f'"event":"send","request_id":{_encode_text(fields["request_id"])},'
        f'"dialect":{_encode_text(fields["dialect"])},'
        f'"from":{"null" if sender is None else _encode_text(sender)},'
        f'"to":[{to}],"recipients":{fields["recipients"]},'
        f'"decision":{_encode_text(fields["decision"])},"reason":{_encode_text(fields["reason"])},'
        f'"segments":{"null" if segments is None else segments},'
        f'"status":{"null" if status is None else status}'
    )
    if "segments_before" in fields:
        text += f',"segments_before":{fields["segments_before"]}'
    if "blocked" in fields:
        blocked = ",".join(
            [
                f'{{"to":{_encode_text(b["to"])},"reason":{_encode_text(b["reason"])}}}'
                for b in fields["blocked"]
            ]
        )
        text += f',"blocked":[{blocked}]'
    if "upstream_status" in fields:
        text += f',"upstream_status":{fields["upstream_status"]}'
    return text


_LOGGED_RECIPIENTS = 100
"""A batch's decision line names at most this many recipients (``recipients`` counts all)."""


def _key_or_raw(raw: str, region: str) -> str:
    try:
        return customer_key(raw, region)
    except InvalidAddress:
        return raw


def _segments_of(parsed: ParsedSend | None, footer: Sequence[FooterDecision]) -> int | None:
    """Segments of what was (or would have been) sent: after the footer when one was decided,
    else of the text as given (None when there is no single text to count)."""
    if footer:
        return sum(d.after.segments for d in footer)
    if parsed is None or parsed.kind is SendKind.BATCH or parsed.text is None:
        return None
    return segment_total(parsed.text)


async def _handle_send(
    request: SendRequest, dialect: Dialect, kind: SendKind, trace: _Trace
) -> web.Response | RelayedReply:
    started = time.perf_counter()
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    request_id = trace.request_id
    shadow = settings.mode == "shadow"
    slots: list[int] = []
    try:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BadRequest(
                "body-too-large",
                f"The body is over the limit of {settings.max_body_bytes} bytes",
                status=413,
            ) from None
        refusal = await _check_credentials(request, dialect)
        if refusal is not None:
            metrics.sends.labels(dialect.name, "refused", "carrier-credentials").inc()
            trace.decision, trace.reason = "refused", "carrier-credentials"
            return refusal
        _refuse_send_parameters_in_query(request)
        _refuse_encoded_body(request)
        parsed = dialect.parse_send(kind, request.headers.get(hdrs.CONTENT_TYPE, ""), body)
        trace.parsed = parsed
        verdict = await _check(
            parsed,
            request.app[INDEX],
            settings.default_region,
            settings.consent_default,
            request.app[ERASURE_KEY],
        )
        trace.verdict = verdict
        if settings.quiet_hours.active or settings.frequency_caps.enabled:
            slots = await schedule.apply_sending_rules(request, parsed, verdict, shadow)
    except BadRequest as exc:
        metrics.sends.labels(dialect.name, "refused", "bad-request").inc()
        return refuse_bad_request(dialect, exc, request_id)
    except StoreUnavailable as exc:
        log.error(
            "consent undeterminable: send refused",
            extra={"event": "store-unavailable", "request_id": request_id, "error": str(exc)},
        )
        metrics.sends.labels(dialect.name, "refused", "consent-unavailable").inc()
        return refuse(
            dialect,
            DialectError(
                ErrorKind.CONSENT_UNAVAILABLE,
                "consent-unavailable",
                "Consent cannot be determined right now; the send was not forwarded",
            ),
            request_id,
        )
    except (UpstreamUnreachable, UpstreamTimeout) as exc:
        return refuse_upstream_failure(request, dialect, exc, request_id)

    decision_header = "allowed"
    if parsed.kind is SendKind.BATCH and not verdict.kept_items and not verdict.blocked:
        first_invalid = verdict.invalid[0]
        metrics.sends.labels(dialect.name, "refused", "bad-request").inc()
        return refuse_bad_request(
            dialect,
            BadRequest(
                first_invalid.reason,
                f"no valid recipient: {first_invalid.recipient}",
                parameter="to",
            ),
            request_id,
        )
    if verdict.blocked:
        first = verdict.blocked[0].reason
        if shadow:
            await _log_blocked(request, dialect, parsed, verdict, request_id, "would-block:")
            metrics.sends.labels(dialect.name, "would-block", first).inc()
            decision_header = f"would-block; reason={first}"
        else:
            await _log_blocked(request, dialect, parsed, verdict, request_id, "")
            if parsed.kind is SendKind.MESSAGE or not verdict.kept_items:
                _labelled(metrics.sends, dialect.name, "blocked", first).inc()
                names = ", ".join(b.recipient for b in verdict.blocked)
                return refuse(
                    dialect,
                    schedule.refusal(first, verdict.blocked)
                    or DialectError(
                        ErrorKind.BLOCKED,
                        first,
                        f"The recipient opted out: {names}",
                        "to",
                        tuple(verdict.blocked),
                    ),
                    request_id,
                    "blocked",
                )
            decision_header = f"partial; reason={first}; dropped={len(verdict.blocked)}"
            metrics.sends.labels(dialect.name, "partial", first).inc()
    else:
        _labelled(metrics.sends, dialect.name, "allowed", "").inc()

    dropped = verdict.invalid + ([] if shadow else verdict.blocked)
    if shadow and verdict.blocked and parsed.kind is SendKind.BATCH:
        # Shadow mode forwards what consent would block, but never an unkeyable address.
        verdict.kept_items = _with_blocked(parsed, verdict)
    changed = False
    if parsed.kind is SendKind.BATCH and dropped:
        dialect.set_batch(parsed, verdict.kept_items)
        changed = True
    try:
        decisions, footed = await _apply_footer(request, dialect, parsed, verdict)
    except StoreUnavailable:
        decisions, footed = [], []
    trace.footer = decisions
    if any(d.added for d in decisions):
        if parsed.kind is SendKind.BATCH:
            dialect.set_batch(parsed, verdict.kept_items)
        changed = True

    headers = upstream.end_to_end_raw(request.raw_headers, _NOT_FORWARDED)
    if changed:
        body, content_type = dialect.encode_send(parsed)
        headers = upstream.with_header(headers, b"Content-Type", content_type.encode("ascii"))
    base = settings.twilio_upstream if dialect.name == "twilio" else settings.ringcentral_upstream
    _labelled(metrics.gateway_latency, dialect.name).observe(time.perf_counter() - started)
    upstream_started = time.perf_counter()
    try:
        response = await request.app[SEND_CLIENT].request(
            request.method,
            upstream.upstream_url(base, request.raw_path),
            headers=headers,
            body=body,
        )
        reply = response.body
    except (UpstreamUnreachable, UpstreamTimeout) as exc:
        return refuse_upstream_failure(request, dialect, exc, request_id)
    _labelled(metrics.upstream_latency, dialect.name).observe(
        time.perf_counter() - upstream_started
    )
    trace.upstream_status = response.status
    if slots and not 200 <= response.status < 300:
        await schedule.give_back(request, slots)
    if response.status >= 500:
        metrics.upstream_errors.labels(dialect.name, "http-5xx").inc()
    if response.status == 401:
        # The carrier refuses these credentials now: no more consent answers on the old check.
        scope = _twilio_account(request.path) if dialect.name == "twilio" else ""
        request.app[CREDENTIALS].forget(request.headers.get(hdrs.AUTHORIZATION, ""), scope)

    if (
        parsed.kind is SendKind.MESSAGE
        and verdict.allowed
        and dialect.refused_as_opted_out(response.status, reply)
    ):
        await _learn_carrier_block(request, dialect, verdict)
    ok = 200 <= response.status < 300
    if ok and parsed.kind is SendKind.BATCH and dropped:
        reply = _merge_batch_reply(dialect, reply, verdict.kept_items, dropped)
    if ok and footed and settings.footer is FooterMode.FIRST:
        await _remember_footer(request, verdict.sender_key, footed)
    own = [(DECISION_HEADER, decision_header), ("X-Request-Id", request_id)]
    segments = _segments_header(decisions)
    if segments is not None:
        own.append((SEGMENTS_HEADER, segments))
    # The carrier's headers end-to-end only already (gateway.upstream_lean).
    return RelayedReply(response.status, response.raw_headers, reply, own)


_NOT_FORWARDED = upstream.dropped_bytes("Accept-Encoding", schedule.CATEGORY_HEADER)
"""Request headers a send does not take to the carrier, beside the hop-by-hop ones."""


async def _learn_carrier_block(request: SendRequest, dialect: Dialect, verdict: Verdict) -> None:
    """The carrier refused the send as opted out: record it, so the next one stops here."""
    region = request.app[SETTINGS].default_region
    changes = [
        ConsentChange(
            verdict.sender_key,
            customer_key(raw, region),
            OptStatus.OPT_OUT,
            Source.UPSTREAM,
            actor=f"upstream:{dialect.name}",
            note="the carrier refused a send: the recipient opted out there",
        )
        for raw in verdict.allowed
    ]
    try:
        applied = await request.app[INDEX].apply(changes, follow_up_for(request.app[SETTINGS]))
    except StoreUnavailable:
        log.warning(
            "carrier opt-out not recorded (store unavailable)",
            extra={"event": "store-unavailable", "dialect": dialect.name},
        )
        return
    request.app[METRICS].count_applied(applied)


def _with_blocked(parsed: ParsedSend, verdict: Verdict) -> list[BatchItem]:
    """Shadow mode: the kept items plus the consent-blocked recipients, in original order."""
    return items_without(parsed.items, verdict.invalid)


def _merge_batch_reply(
    dialect: Dialect, reply: bytes, kept: Sequence[BatchItem], dropped: Sequence[Blocked]
) -> bytes:
    try:
        document = json.loads(reply)
    except (ValueError, RecursionError):
        return reply
    merged = dialect.merge_batch_reply(document, kept, sorted(dropped, key=lambda b: b.index or 0))
    return json.dumps(merged, ensure_ascii=False).encode()


async def _remember_footer(request: SendRequest, sender_key: str, recipients: list[str]) -> None:
    store = request.app[INDEX].store
    region = request.app[SETTINGS].default_region
    try:
        for raw in recipients:
            await store.mark_footer_sent(sender_key, customer_key(raw, region))
    except StoreUnavailable:
        log.warning("footer state not recorded; the next send may carry the footer again")


async def _check_credentials(request: SendRequest, dialect: Dialect) -> web.Response | None:
    checker = request.app[CREDENTIALS]
    authorization = request.headers.get(hdrs.AUTHORIZATION, "")
    if dialect.name == "twilio":
        account_sid = _twilio_account(request.path)
        refusal = await checker.check_twilio(authorization, account_sid)
    else:
        refusal = await checker.check_ringcentral(authorization)
    if refusal is None:
        return None
    return web.Response(
        status=refusal.status,
        body=refusal.body,
        headers={hdrs.CONTENT_TYPE: refusal.content_type},
    )


def _twilio_account(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    # /2010-04-01/Accounts/{sid}/Messages.json
    return parts[2] if len(parts) > 2 else ""
