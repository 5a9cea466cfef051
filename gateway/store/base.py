"""The domain-level store contract every backend implements (SQLite, PostgreSQL).

Stores know consent records, their append-only history, the blocked-send log, footer state and
Messaging Service membership. They know nothing of carriers or HTTP. Every method raises
:class:`gateway.errors.StoreUnavailable` when the backend cannot answer, never a driver error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from policy.consent import ConsentRecord, OptStatus, Source, Suppression, SuppressionKind


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
class ImportCounts:
    """What an import batch did: ``applied`` changes replaced or created a record, ``skipped``
    ones were older than (or equal to) what the store held."""

    applied: int
    skipped: int


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


@dataclass(frozen=True, slots=True)
class SendSlotRequest:
    """Count one more send to ``to_key`` if fewer than ``limit`` were counted within the last
    ``window_us`` microseconds (a frequency cap, see :mod:`policy.frequency_caps`)."""

    to_key: str
    limit: int
    window_us: int


@dataclass(frozen=True, slots=True)
class SuppressionList:
    """A named suppression list as last published (``stopgate suppressions list``)."""

    name: str
    kind: SuppressionKind
    listed_us: int
    """The list's as-of date: what a ``reassigned`` entry compares an OptIn's time with."""
    imported_us: int
    members: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SuppressionRefresh:
    """What publishing a list's new members did."""

    list: SuppressionList
    added: int
    """Numbers listed now that the previous version did not list."""
    released: int
    """Numbers the previous version listed that are no longer suppressed by this list."""


REVIEW_STATUSES = ("open", "opted-out", "dismissed")
"""A review is ``open`` until an admin opts the pair out or dismisses it."""


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    """An inbound message the plain-language classifier found unclear (it may revoke consent),
    kept for compliance review with the classifier's explanation. ``id`` and ``clarified`` are
    set by the store when it keeps the entry."""

    id: int
    created_us: int
    provider: str
    message_id: str
    from_key: str
    """The business number the message was sent to."""
    to_key: str
    """The customer who wrote it."""
    text: str
    rule: str
    explanation: str
    language: str
    clarified: bool = False
    """This message was answered with the one clarifying text."""
    status: str = "open"
    resolved_us: int | None = None
    resolved_by: str | None = None


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

    async def import_changes(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> ImportCounts:
        """:meth:`apply` of an import batch - the same transaction, records, history, footer
        state, change-log entries and follow-up - answering only how many applied. A backend may
        decide a large batch in the database instead of change by change."""

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

    async def add_review(self, entry: ReviewEntry, clarified_since_us: int) -> ReviewEntry | None:
        """Keep ``entry`` for review, unless one of the same (provider, message id) exists
        (then None: a message delivered again is reviewed once). The kept entry has its id,
        and ``clarified`` True unless an earlier entry of the same pair was clarified at or
        after ``clarified_since_us`` (one clarifying text per pair and window), in one
        transaction so two deliveries at once cannot both clarify."""

    async def reviews(
        self, *, status: str | None, before_id: int | None, limit: int
    ) -> list[ReviewEntry]:
        """Entries with ``status`` (None: any) and an id below ``before_id``, newest first."""

    async def resolve_review(
        self, review_id: int, status: str, actor: str, now_us: int
    ) -> ReviewEntry | None:
        """Close an open entry as ``opted-out`` or ``dismissed``; None when no open entry has
        that id (unknown, or already closed)."""

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
        """Pending entries due by ``now_us``, the earliest due (``not_before_us``) first, and
        those due at the same moment in the order they were queued."""

    async def claim_outbox(
        self, now_us: int, limit: int, lease_us: int, owner: str, stale_us: int
    ) -> list[OutboxEntry]:
        """Due entries no live worker holds, leased to ``owner`` for ``lease_us``, so two
        workers - tasks, processes or gateways on one store - never deliver one twice. A lease
        whose owner has not sent a heartbeat within ``stale_us`` (it died) is taken over.
        Taken, and returned, in :meth:`due_outbox`'s order; only the head of an ordered queue
        (``ordering_key``) is taken, so its entries go in the order they were queued. Its cost
        does not grow with the entries pending behind those it takes: neither the free entries
        after the first ``limit`` nor those waiting behind an ordered queue's head."""

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
        state, review entries) in one transaction; keep ``suppression`` (a record under a keyed
        hash of the number) so an erased customer who had opted out stays blocked. Returns rows
        removed."""

    async def prune(self, *, blocked_before_us: int | None, history_before_us: int | None) -> int:
        """Drop blocked-send log entries and history older than the retention periods."""

    async def stage_suppressions(self, name: str) -> int:
        """Start replacing the members of list ``name``: returns the generation to stage them
        under (and forgets what an unfinished earlier import staged)."""

    async def add_suppressions(self, name: str, generation: int, to_keys: Sequence[str]) -> None:
        """Stage members (duplicates are ignored); invisible to lookups until published."""

    async def publish_suppressions(
        self, name: str, generation: int, kind: SuppressionKind, listed_us: int, note: str | None
    ) -> SuppressionRefresh:
        """In one transaction: make the staged generation the list's members (the previous
        ones are released), and flush every cache through the change feed."""

    async def drop_suppression_list(self, name: str) -> int:
        """Remove a list and release its members (flushing the caches); returns how many."""

    async def suppressions_of(self, to_key: str) -> list[Suppression]:
        """The published lists that hold ``to_key``, by list name."""

    async def suppression_lists(self) -> list[SuppressionList]:
        """Every published list, by name."""

    async def suppression_members(self, name: str, *, after: str | None, limit: int) -> list[str]:
        """Members of a published list in key order, strictly after ``after``."""

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

    async def take_send_slots(
        self, requests: Sequence[SendSlotRequest], now_us: int
    ) -> list[int | None]:
        """In one transaction, for each request in order: when the sends to its ``to_key``
        counted within ``(now_us - window_us, now_us]`` are fewer than ``limit``, count one more
        at ``now_us`` and give its slot id, else None. Atomic across every process and gateway
        sharing the store (two racing callers never exceed a limit). Slots older than the
        window are forgotten on the way."""

    async def release_send_slots(self, slot_ids: Sequence[int]) -> None:
        """Un-count sends (taken, then not forwarded after all); unknown ids are ignored."""

    async def prune_send_slots(self, before_us: int, limit: int) -> int:
        """Forget at most ``limit`` counted sends taken at or before ``before_us`` (oldest
        first), in one short transaction; returns how many. Call again while it returns
        ``limit``. Counts inside any cap window are untouched when ``before_us`` is at least the
        longest window before now."""

    async def send_slot_times(self, to_key: str, since_us: int) -> list[int]:
        """When the sends to ``to_key`` counted after ``since_us`` were taken, oldest first
        (read only: ``stopgate consents check`` shows them against the cap)."""
