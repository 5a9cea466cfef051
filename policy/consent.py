"""Consent records and how the effective status of a (business, customer) pair is resolved.

A send from business key ``F`` (optionally through Messaging Service ``S``) to customer key ``T``
is decided by the records that apply to it: ``(F, T)``, ``(S, T)`` when a service is involved,
``(brand:B, T)`` when ``F`` or ``S`` belongs to a configured brand ``B``, and the wildcard
``(*, T)``. The newest record (by ``modified_us``) wins; an exact tie goes to ``OptOut``. With no
record the default applies: the sender's own setting, else its brand's, else the global one.

Suppression lists (do-not-call extracts, reassigned numbers, internal lists) block a customer
for every sender on top of the records; whether a customer's consent overrides an entry depends
on the list's kind (see :class:`SuppressionKind`).
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from policy.numbers import WILDCARD, is_brand_key, is_service_sid


class OptStatus(enum.StrEnum):
    OPT_IN = "OptIn"
    OPT_OUT = "OptOut"


class Source(enum.StrEnum):
    """Who caused a consent change (RingCentral's consent API vocabulary, plus ``Carrier``)."""

    RECIPIENT = "Recipient"
    API = "Api"
    UPSTREAM = "Upstream"
    CARRIER = "Carrier"


class DefaultConsent(enum.StrEnum):
    """What applies to a pair with no record: implied consent, or marketing mode."""

    ALLOW = "allow"
    REQUIRE_OPT_IN = "require-opt-in"


class BlockReason(enum.StrEnum):
    """Why a send is refused; the value appears in ``X-Stopgate-Decision`` and the blocked log."""

    OPT_OUT = "opt-out"
    OPT_OUT_ALL = "opt-out-all"
    OPT_OUT_SERVICE = "opt-out-service"
    NO_OPT_IN = "no-opt-in"
    OPT_OUT_BRAND = "opt-out-brand"
    SUPPRESSED = "suppressed"
    """The customer is on a suppression list (which one: ``stopgate consents check``)."""


class SuppressionKind(enum.StrEnum):
    """What a suppression list is, which decides whether a customer's consent overrides it."""

    INTERNAL = "internal"
    """The business's own do-not-contact list: blocks always; no OptIn overrides it."""
    DNC = "dnc"
    """A do-not-call registry extract: the customer's express consent (an OptIn governing the
    send) overrides it, as it does the registry itself."""
    REASSIGNED = "reassigned"
    """Numbers reassigned to a new subscriber since the list date: consent given before that
    date came from someone else, so only an OptIn newer than the entry overrides it."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """One customer's entry on one suppression list; ``listed_us`` is the list's as-of date."""

    list_name: str
    kind: SuppressionKind
    listed_us: int


class OptOutScope(enum.StrEnum):
    """A brand's ``opt_out_scope``: which ``from`` keys a STOP (and START) on its numbers writes."""

    PAIR = "pair"
    """The number (and its Messaging Service, as Twilio scopes it)."""
    BRAND = "brand"
    """Also the brand: every number of the brand, whatever the carrier."""


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """The current consent of one key pair. ``modified_us`` is UTC microseconds since the epoch."""

    from_key: str
    to_key: str
    status: OptStatus
    source: Source
    modified_us: int
    note: str | None = None
    evidence: str | None = None
    """How an opt-in was collected (JSON text, as given): kept with the record and its history."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: BlockReason | None
    deciding: ConsentRecord | None
    """The record that decided, or ``None`` when the default applied."""
    suppression: Suppression | None = None
    """The suppression list entry that blocked the send, if one did."""


def newest(records: Iterable[ConsentRecord | None]) -> ConsentRecord | None:
    """The record that governs: the newest, with an exact tie going to ``OptOut``.

    Among records equal in both time and status the first one given is kept.
    """
    best: ConsentRecord | None = None
    for record in records:
        if record is not None and supersedes(record, best):
            best = record
    return best


def supersedes(incoming: ConsentRecord, current: ConsentRecord | None) -> bool:
    """Whether ``incoming`` replaces ``current`` as the record of its key pair.

    A strict order: newer wins, an exact tie goes to ``OptOut``, and a record never supersedes
    itself or one equal to it in time and status.
    """
    if current is None:
        return True
    if incoming.modified_us != current.modified_us:
        return incoming.modified_us > current.modified_us
    return incoming.status is OptStatus.OPT_OUT and current.status is OptStatus.OPT_IN


def _block_reason(record: ConsentRecord) -> BlockReason:
    if record.from_key == WILDCARD:
        return BlockReason.OPT_OUT_ALL
    if is_service_sid(record.from_key):
        return BlockReason.OPT_OUT_SERVICE
    if is_brand_key(record.from_key):
        return BlockReason.OPT_OUT_BRAND
    return BlockReason.OPT_OUT


def suppression_holds(entry: Suppression, governing: ConsentRecord | None) -> bool:
    """Whether a suppression list entry blocks a send that ``governing`` would otherwise decide."""
    if entry.kind is SuppressionKind.INTERNAL:
        return True
    if governing is None or governing.status is not OptStatus.OPT_IN:
        return True
    if entry.kind is SuppressionKind.REASSIGNED:
        return governing.modified_us <= entry.listed_us
    return False


def decide(
    records: Iterable[ConsentRecord | None],
    default: DefaultConsent,
    suppressions: Iterable[Suppression] = (),
) -> Decision:
    """Decide a send from the records that apply to it (pair, service, brand, wildcard) and the
    customer's suppression list entries. A holding suppression is named before an opt-out."""
    governing = newest(records)
    for entry in suppressions:
        if suppression_holds(entry, governing):
            return Decision(False, BlockReason.SUPPRESSED, governing, entry)
    if governing is None:
        if default is DefaultConsent.ALLOW:
            return Decision(True, None, None)
        return Decision(False, BlockReason.NO_OPT_IN, None)
    if governing.status is OptStatus.OPT_IN:
        return Decision(True, None, governing)
    return Decision(False, _block_reason(governing), governing)


def applicable_from_keys(
    business: str | None,
    service: str | None,
    *,
    number_service: str | None = None,
    brand_of: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The ``from`` keys whose records govern a send from ``business`` and/or ``service``:
    the senders themselves, ``number_service`` (the Messaging Service ``business`` belongs to),
    the brand of each of them (``brand_of``: business key -> brand key), then ``*``."""
    senders = [key for key in (business, service, number_service) if key is not None]
    keys = list(senders)
    if brand_of:
        keys.extend(brand_of[key] for key in senders if key in brand_of)
    keys.append(WILDCARD)
    return tuple(dict.fromkeys(keys))


def default_for(
    from_keys: Iterable[str],
    overrides: Mapping[str, DefaultConsent],
    fallback: DefaultConsent,
) -> DefaultConsent:
    """The default of a send governed by ``from_keys``: the senders' own settings (number or
    Messaging Service) win over their brand's, which win over ``fallback``. Where settings of
    the same rank disagree, ``require-opt-in`` wins (the stricter one)."""
    own: set[DefaultConsent] = set()
    brand: set[DefaultConsent] = set()
    for key in from_keys:
        setting = overrides.get(key)
        if setting is not None and key != WILDCARD:
            (brand if is_brand_key(key) else own).add(setting)
    for rank in (own, brand):
        if rank:
            return (
                DefaultConsent.REQUIRE_OPT_IN
                if DefaultConsent.REQUIRE_OPT_IN in rank
                else DefaultConsent.ALLOW
            )
    return fallback


def keyword_scopes(
    status: OptStatus,
    businesses: Sequence[str],
    service: str | None,
    *,
    everywhere: bool,
    service_of: Mapping[str, str],
    brand_of: Mapping[str, str],
    brand_scoped: Collection[str],
) -> tuple[str, ...]:
    """The ``from`` keys a recipient's keyword writes ``status`` under.

    ``businesses`` received it (through ``service``, when the webhook names one). An opt-out
    ``everywhere`` (``opt_out_scope = "all"``, or a STOPALL keyword) writes ``*`` alone.
    Otherwise the numbers, the Messaging Services (Twilio scopes opt-outs to the whole service)
    and - for brands in ``brand_scoped`` - the brand. A START is scoped like a STOP, so it can
    always undo the STOP it follows: after a brand-wide STOP, a START on any number of the brand
    reopens the brand.
    """
    if status is OptStatus.OPT_OUT and everywhere:
        return (WILDCARD,)
    keys = list(businesses)
    if service is not None:
        keys.append(service)
    keys.extend(service_of[number] for number in businesses if number in service_of)
    keys.extend(brand_of[key] for key in list(keys) if brand_of.get(key) in brand_scoped)
    return tuple(dict.fromkeys(keys))


def explain(decision: Decision, default: DefaultConsent) -> str:
    """One human sentence on why a pair is allowed or blocked (``stopgate consents check``)."""
    record = decision.deciding
    verdict = "allowed" if decision.allowed else f"blocked ({decision.reason})"
    if decision.suppression is not None:
        entry = decision.suppression
        return (
            f"{verdict}: on the {entry.kind.value} suppression list {entry.list_name!r} "
            f"(as of {format_time(entry.listed_us)}); "
            + (
                "no consent overrides that list"
                if entry.kind is SuppressionKind.INTERNAL
                else "only an OptIn "
                + ("newer than that date " if entry.kind is SuppressionKind.REASSIGNED else "")
                + "overrides it"
            )
        )
    if record is None:
        return f"{verdict}: no consent record applies; the default is {default.value!r}"
    scope = "every business number (*)" if record.from_key == WILDCARD else record.from_key
    return (
        f"{verdict}: the newest applicable record is {record.status.value} for {scope} -> "
        f"{record.to_key}, source {record.source.value}, at {format_time(record.modified_us)}"
    )


def format_time(modified_us: int) -> str:
    """ISO 8601 UTC with microseconds, as the consent API shows ``lastModifiedTime``.

    Raises ``ValueError`` for a time outside the years 1-9999 (see :func:`parse_time`).
    """
    if not _MIN_US <= modified_us <= _MAX_US:
        raise ValueError(f"time {modified_us} us is outside the years 1-9999")
    # Not strftime("%Y"): glibc does not zero-pad years before 1000, which parse_time refuses.
    moment = _EPOCH_NAIVE + _dt.timedelta(microseconds=modified_us)
    return moment.isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> int:
    """Parse an ISO 8601 time (``Z`` or an offset; naive means UTC) into UTC microseconds.

    Digits past the microsecond (RingCentral sends nanoseconds) are truncated. Raises
    ``ValueError`` for text that is not such a time, and for a time whose UTC instant lies outside
    the years 1-9999 (``0001-01-01T00:00:00+01:00``), which :func:`format_time` could not show.
    """
    value = _dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    delta = value - _EPOCH
    result = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not _MIN_US <= result <= _MAX_US:
        raise ValueError(f"{text!r} lies outside the years 1-9999 in UTC")
    return result


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_EPOCH_NAIVE = _dt.datetime(1970, 1, 1)
_MIN_US = (_dt.datetime.min - _EPOCH_NAIVE) // _dt.timedelta(microseconds=1)
_MAX_US = (_dt.datetime.max - _EPOCH_NAIVE) // _dt.timedelta(microseconds=1)
