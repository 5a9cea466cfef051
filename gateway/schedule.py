"""Sending rules after consent: quiet hours and frequency caps for marketing sends.

Called by the send path once consent has decided (``gateway.sending``). Recipients these rules
refuse join the verdict's blocked list with reason ``quiet-hours`` or ``frequency-cap``, so they
are refused, dropped from a batch, logged, counted and (in shadow mode) forwarded exactly like
consent blocks. The send path calls this only when a rule is on (with both off, a send costs
nothing more and the ``X-Stopgate-Category`` header is not read).

Frequency caps count in the store (shared by every gateway on it). A slot is taken only for a
send that passed every other check; it is given back when the send is refused after all (a
group send with another recipient over its cap) or when the carrier answers with an error.
A carrier that cannot be reached or does not answer in time keeps the slot: the message may
have gone out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.dialects.base import (
    Blocked,
    DialectError,
    ErrorKind,
    ParsedSend,
    SendKind,
    items_without,
)
from gateway.errors import BadRequest, StoreUnavailable
from gateway.keys import CLOCK, INDEX, SETTINGS
from gateway.send_request import SendRequest
from gateway.store.base import SendSlotRequest
from policy.categories import (
    FREQUENCY_CAP,
    QUIET_HOURS,
    Category,
    UnknownCategory,
    category_of,
)
from policy.numbers import InvalidAddress, business_key, customer_key
from policy.quiet_hours import decide_quiet_hours
from policy.us_states import state_of

if TYPE_CHECKING:
    from gateway.sending import Verdict

CATEGORY_HEADER = "X-Stopgate-Category"

_MESSAGES = {
    QUIET_HOURS: "Message filtered: marketing texts go out only within the recipient's local"
    " sending hours",
    FREQUENCY_CAP: "Message filtered: the recipient has had as many marketing texts as the"
    " frequency cap allows",
}


async def apply_sending_rules(
    request: SendRequest, parsed: ParsedSend, verdict: Verdict, shadow: bool
) -> list[int]:
    """Move the recipients quiet hours or frequency caps refuse from ``verdict.allowed`` (and
    its kept batch items) to ``verdict.blocked``. Returns the frequency-cap slots taken for
    what will be forwarded (give them back with :func:`give_back` if the carrier refuses).
    Raises :class:`BadRequest` for an unknown category header. Call only when a rule is on."""
    settings = request.app[SETTINGS]
    quiet, caps = settings.quiet_hours, settings.frequency_caps
    senders = _sender_keys(request, parsed, settings.default_region)
    header = request.headers.get(CATEGORY_HEADER)
    try:
        category = category_of(header, senders, settings.categories, settings.category_default)
    except UnknownCategory as exc:
        raise BadRequest("invalid-category", str(exc), parameter=CATEGORY_HEADER) from None
    if category is not Category.MARKETING:
        return []
    if parsed.kind is SendKind.MESSAGE and verdict.blocked and not shadow:
        return []  # refused whole for consent already: nothing to add, nothing to count
    region = settings.default_region
    candidates = _candidates(parsed, verdict, region)
    refused: list[Blocked] = []
    rule = quiet.rule_for(senders)
    if rule.enabled:
        now = request.app[CLOCK].now()
        for raw, index, to_key in candidates:
            decision = decide_quiet_hours(rule, to_key, state_of(to_key), now, quiet.fallback_zone)
            if not decision.allowed:
                refused.append(Blocked(raw, QUIET_HOURS, index))
    whole_send_refused = parsed.kind is SendKind.MESSAGE and bool(refused) and not shadow
    slots: list[int] = []
    if caps.enabled and not whole_send_refused:
        quiet_refused = {(b.index, b.recipient) for b in refused}
        counted: list[tuple[str, int | None]] = []
        requests: list[SendSlotRequest] = []
        for raw, index, to_key in candidates:
            cap = caps.cap_for(to_key)
            if cap is not None and (index, raw) not in quiet_refused:
                counted.append((raw, index))
                requests.append(SendSlotRequest(to_key, cap.count, cap.window_us))
        if requests:
            store = request.app[INDEX].store
            taken = await store.take_send_slots(requests, request.app[CLOCK].now_us())
            for (raw, index), slot in zip(counted, taken, strict=True):
                if slot is None:
                    refused.append(Blocked(raw, FREQUENCY_CAP, index))
                else:
                    slots.append(slot)
            if parsed.kind is SendKind.MESSAGE and refused and not shadow and slots:
                await store.release_send_slots(slots)
                slots = []
    if refused:
        _block(verdict, refused)
    return slots


async def give_back(request: SendRequest, slots: Sequence[int]) -> None:
    """The carrier refused the send: its frequency-cap slots count no more."""
    if not slots:
        return
    # When the store cannot take them back, they stay counted: stricter, never laxer.
    with contextlib.suppress(StoreUnavailable):
        await request.app[INDEX].store.release_send_slots(slots)


def refusal(reason: str, blocked: Sequence[Blocked]) -> DialectError | None:
    """The dialect error of a send refused by a sending rule (None for other reasons)."""
    message = _MESSAGES.get(reason)
    if message is None:
        return None
    names = ", ".join(b.recipient for b in blocked if b.reason == reason)
    return DialectError(ErrorKind.RESTRICTED, reason, f"{message}: {names}", "to", tuple(blocked))


def _sender_keys(request: SendRequest, parsed: ParsedSend, region: str) -> tuple[str, ...]:
    """Business number, then service (given, or the one the number belongs to): the keys a
    category or a quiet-hours rule may be configured under, in that order of precedence."""
    keys: list[str] = []
    for raw in (parsed.business, parsed.service):
        if raw:
            try:
                keys.append(business_key(raw, region))
            except InvalidAddress:
                continue  # refused by the consent check already
    if parsed.business and keys:
        service = request.app[INDEX].service_of(keys[0])
        if service is not None and service not in keys:
            keys.append(service)
    return tuple(keys)


def _candidates(
    parsed: ParsedSend, verdict: Verdict, region: str
) -> list[tuple[str, int | None, str]]:
    """(raw recipient, batch index, customer key) of everything about to be forwarded."""
    pairs: list[tuple[str, int | None]]
    if parsed.kind is SendKind.BATCH:
        pairs = [(raw, item.index) for item in verdict.kept_items for raw in item.recipients]
    else:
        pairs = [(raw, None) for raw in verdict.allowed]
    return [(raw, index, customer_key(raw, region)) for raw, index in pairs]


def _block(verdict: Verdict, refused: Sequence[Blocked]) -> None:
    verdict.blocked.extend(refused)
    for block in refused:
        if block.recipient in verdict.allowed:
            verdict.allowed.remove(block.recipient)
    verdict.kept_items = items_without(verdict.kept_items, refused)
