"""Consent records and how the effective status of a (business, customer) pair is resolved.

A send from business key ``F`` (optionally through Messaging Service ``S``) to customer key ``T``
is decided by the records that apply to it: ``(F, T)``, ``(S, T)`` when a service is involved, and
the wildcard ``(*, T)``. The newest record (by ``modified_us``) wins; an exact tie goes to
``OptOut``. With no record the configured default applies.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from policy.numbers import WILDCARD, is_service_sid


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
    return BlockReason.OPT_OUT


def decide(records: Iterable[ConsentRecord | None], default: DefaultConsent) -> Decision:
    """Decide a send from the records that apply to it (pair, service, wildcard)."""
    governing = newest(records)
    if governing is None:
        if default is DefaultConsent.ALLOW:
            return Decision(True, None, None)
        return Decision(False, BlockReason.NO_OPT_IN, None)
    if governing.status is OptStatus.OPT_IN:
        return Decision(True, None, governing)
    return Decision(False, _block_reason(governing), governing)


def applicable_from_keys(business: str | None, service: str | None) -> tuple[str, ...]:
    """The ``from`` keys whose records govern a send from ``business`` and/or ``service``."""
    keys = [key for key in (business, service) if key is not None]
    keys.append(WILDCARD)
    return tuple(dict.fromkeys(keys))


def explain(decision: Decision, default: DefaultConsent) -> str:
    """One human sentence on why a pair is allowed or blocked (``stopgate consents check``)."""
    record = decision.deciding
    verdict = "allowed" if decision.allowed else f"blocked ({decision.reason})"
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
