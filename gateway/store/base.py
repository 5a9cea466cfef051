"""The domain-level store contract every backend implements (SQLite, PostgreSQL).

Stores know consent records, their append-only history, the blocked-send log, footer state and
Messaging Service membership. They know nothing of carriers or HTTP. Every method raises
:class:`gateway.errors.StoreUnavailable` when the backend cannot answer, never a driver error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from policy.consent import ConsentRecord, OptStatus, Source


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A requested write. ``modified_us=None`` means a live write: the store stamps it with a time
    strictly greater than every time it has stamped before. Imported records carry their own."""

    from_key: str
    to_key: str
    status: OptStatus
    source: Source
    actor: str
    note: str | None = None
    modified_us: int | None = None
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """What a write did: ``applied`` is False when a newer record already governed the pair."""

    record: ConsentRecord
    previous: OptStatus | None
    applied: bool


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    from_key: str
    to_key: str
    old_status: OptStatus | None
    new_status: OptStatus | None
    """None: the record was deleted (the default applies again)."""
    source: Source
    actor: str
    modified_us: int
    note: str | None
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class BlockedSend:
    at_us: int
    dialect: str
    from_key: str
    to_key: str
    reason: str
    request_id: str
    text_length: int
    text_sha256: str
    text: str | None = None
    """Full text only when configured (``blocked_log_text = true``)."""


@dataclass(frozen=True, slots=True)
class BlockedQuery:
    """Filters of the blocked-send log (the compliance console); ``None`` / empty means any."""

    from_us: int | None = None
    """Entries logged at or after this time (``at_us >= from_us``)."""
    to_us: int | None = None
    """Entries logged strictly before this time (``at_us < to_us``)."""
    from_key: str | None = None
    to_key: str | None = None
    reasons: tuple[str, ...] = ()
    dialect: str | None = None


@dataclass(frozen=True, slots=True)
class DailyActivity:
    """One UTC day of the console's chart: ``day`` counts days since 1970-01-01."""

    day: int
    blocked: int
    """Blocked-send log entries logged that day."""
    opted_out: int
    """History entries whose new status is OptOut, stamped that day."""


DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in compliance-console session. The cookie holds a random id; the store keeps only
    its SHA-256 (``id_hash``), never the id or the bearer token it was opened with."""

    id_hash: str
    name: str
    """The principal's name (as history shows it)."""
    role: str
    csrf_token: str
    created_us: int
    expires_us: int


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Filters for listing consent records; empty tuples mean "any"."""

    from_keys: tuple[str, ...] = ()
    to_key: str | None = None
    statuses: tuple[OptStatus, ...] = ()
    modified_from_us: int | None = None
    modified_to_us: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """Work to do after a commit (a confirmation to send, an event to forward), kept durably
    until done. ``deadline_us``: give up after this time (None: never)."""

    kind: str
    payload: str
    not_before_us: int
    deadline_us: int | None = None
    ordering_key: str | None = None
    """Entries sharing a key are delivered one at a time, in the order they were queued."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    kind: str
    payload: str
    created_us: int
    not_before_us: int
    deadline_us: int | None
    attempts: int
    in_flight: bool = False
    """A delivery was started and never finished (its worker died mid-call)."""


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    """``duplicate``: this (provider, message id) was recorded before; nothing was done again."""

    duplicate: bool
    applied: list[AppliedChange]
    outbox_ids: list[int] = field(default_factory=list)


FollowUp = Callable[[Sequence[AppliedChange]], list[OutboxItem]]
"""Work derived from the changes that applied (change events, carrier pushes). Pure: it runs
inside the store's transaction."""


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """What changed since a cursor, for caches in other processes and gateways."""

    cursor: int
    flush_all: bool
    """Drop every cache entry (a bulk write, or changes this reader can no longer see)."""
    services: bool
    """Messaging Service membership changed: reload it."""
    pairs: tuple[tuple[str, str], ...]
    """(from_key, to_key) pairs whose records changed."""


PairCursor = tuple[str, str]
"""Position in the (to_key, from_key) key order; paging is keyset-based, never by offset."""


class ConsentStore(Protocol):
    """Durable consent state. One instance is shared by the whole app; methods are safe to call
    concurrently."""

    url_scheme: str

    async def open(self) -> None:
        """Connect and create or migrate the schema."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless a trivial read succeeds now."""

    async def get_records(self, to_key: str, from_keys: Sequence[str]) -> dict[str, ConsentRecord]:
        """The records of ``(f, to_key)`` for each ``f`` in ``from_keys`` that has one."""

    async def get_records_many(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, ConsentRecord]]:
        """:meth:`get_records` of each ``(to_key, from_keys)``, in order, in one read (one
        round trip: a send's number and its erasure alias are looked up together)."""

    async def apply(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> list[AppliedChange]:
        """Apply changes in one transaction, each only where it supersedes the current record
        (newest wins, exact tie to OptOut), appending history for each that applied. An OptIn
        that applies clears the pair's footer state. ``follow_up`` turns what applied into
        outbox work committed in the same transaction. Durable when it returns."""

    async def list_records(
        self,
        query: RecordQuery,
        *,
        after: PairCursor | None,
        limit: int,
        before: PairCursor | None = None,
    ) -> list[ConsentRecord]:
        """Records matching ``query`` in (to_key, from_key) order, strictly after ``after``;
        with ``before`` instead, the last ``limit`` records strictly before it (still in
        ascending order)."""

    async def history(
        self, *, to_key: str | None, from_key: str | None, after_id: int | None, limit: int
    ) -> list[HistoryEntry]: ...

    async def delete_records(
        self, pairs: Sequence[tuple[str, str]], actor: str, note: str | None
    ) -> list[ConsentRecord]:
        """Remove the records of ``(from_key, to_key)`` pairs (history keeps each removal);
        returns the records that existed."""

    async def log_blocked(self, entry: BlockedSend) -> None: ...

    async def log_blocked_many(self, entries: Sequence[BlockedSend]) -> None:
        """Several entries in one transaction (one commit: one fsync for all of them)."""

    async def blocked_sends(
        self, *, before_id: int | None, limit: int
    ) -> list[tuple[int, BlockedSend]]:
        """Newest first."""

    async def find_blocked(
        self, query: BlockedQuery, *, before_id: int | None, limit: int
    ) -> list[tuple[int, BlockedSend]]:
        """Entries matching ``query`` with an id below ``before_id`` (None: from the newest),
        newest (highest id) first, at most ``limit``."""

    async def blocked_totals(self, query: BlockedQuery) -> dict[str, int]:
        """How many entries match ``query``, per reason (reasons with none are absent)."""

    async def daily_activity(self, *, from_us: int, to_us: int) -> list[DailyActivity]:
        """Per UTC day (``time // DAY_US``) within ``[from_us, to_us)``: blocked sends (by
        ``at_us``) and opt-outs (history entries with new status OptOut, by their time). Only
        days with any activity, oldest first."""

    async def create_console_session(self, session: ConsoleSession) -> None:
        """Keep a new console session (and forget every session expired by its creation
        time)."""

    async def console_session(self, id_hash: str, now_us: int) -> ConsoleSession | None:
        """The session whose id hashes to ``id_hash``, unless it expired by ``now_us``."""

    async def delete_console_session(self, id_hash: str) -> None:
        """Sign-out: forget the session (nothing happens if there is none)."""

    async def footer_sent(self, from_key: str, to_key: str) -> bool: ...

    async def mark_footer_sent(self, from_key: str, to_key: str) -> None: ...

    async def set_service_numbers(self, service_key: str, number_keys: Sequence[str]) -> None:
        """Record that each number belongs to the Messaging Service (additive)."""

    async def service_of(self, number_key: str) -> str | None: ...

    async def service_numbers(self) -> dict[str, str]:
        """Every known number -> its Messaging Service."""

    async def record_inbound(
        self,
        provider: str,
        message_id: str,
        received_us: int,
        changes: Sequence[ConsentChange],
        outbox: Sequence[OutboxItem],
        follow_up: FollowUp | None = None,
    ) -> InboundOutcome:
        """In one transaction: remember the inbound message, apply its consent changes and queue
        its follow-up work - unless the message was recorded before (then do nothing)."""

    async def due_outbox(self, now_us: int, limit: int) -> list[OutboxEntry]:
        """Pending entries whose time has come, oldest first."""

    async def claim_outbox(
        self, now_us: int, limit: int, lease_us: int, owner: str, stale_us: int
    ) -> list[OutboxEntry]:
        """Due entries no live worker holds, leased to ``owner`` for ``lease_us``, so two
        workers - tasks, processes or gateways on one store - never deliver one twice. A lease
        whose owner has not sent a heartbeat within ``stale_us`` (it died) is taken over."""

    async def outbox_heartbeat(self, owner: str, now_us: int) -> None:
        """``owner`` is alive (see :meth:`claim_outbox`)."""

    async def outbox_begin(self, entry_id: int) -> None:
        """Durably mark that a delivery is about to start (for sends that must not repeat)."""

    async def outbox_done(self, entry_id: int) -> None: ...

    async def outbox_retry(self, entry_id: int, not_before_us: int, error: str) -> None: ...

    async def outbox_give_up(self, entry_id: int, error: str) -> None: ...

    async def outbox_stats(self, now_us: int) -> tuple[int, int | None]:
        """(pending entries, age in microseconds of the oldest pending one)."""

    async def get_value(self, name: str) -> str | None:
        """A small named value Stopgate keeps for itself (e.g. its webhook subscription)."""

    async def set_value(self, name: str, value: str | None) -> None:
        """Set (None: remove) a named value."""

    async def erase(self, to_key: str, suppression: ConsentRecord | None) -> int:
        """Erase everything held about one customer (records, history, blocked sends, footer
        state) in one transaction; keep ``suppression`` (a record under a keyed hash of the
        number) so an erased customer who had opted out stays blocked. Returns rows removed."""

    async def prune(self, *, blocked_before_us: int | None, history_before_us: int | None) -> int:
        """Drop blocked-send log entries and history older than the retention periods."""

    async def changes_since(self, cursor: int | None) -> ChangeBatch:
        """Changes committed after ``cursor`` (None: just the current head, to start from;
        ``flush_all`` set). Every write that changes consent or service membership appears."""

    async def prune_changes(self, before_us: int) -> None:
        """Forget change-feed entries older than this (the newest is always kept)."""

    async def wait_for_changes(self, within: float) -> bool:
        """Return when another writer may have changed something (True), or after
        ``within`` seconds (False). A store that cannot push changes just sleeps; one that can
        (PostgreSQL's LISTEN/NOTIFY) raises :class:`StoreUnavailable` while it cannot listen."""

    @property
    def pushes_changes(self) -> bool:
        """Whether :meth:`wait_for_changes` wakes on changes (else readers poll)."""
