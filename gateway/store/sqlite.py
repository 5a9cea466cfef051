"""The embedded store: SQLite in WAL mode, with every commit fsync'd.

Each unit of work is one synchronous function run on a dedicated thread that owns its
connection, so a transaction is never interleaved with another coroutine's statements and costs
one thread hop, not one per statement. Writes go through one writer connection; reads use their
own connection so they never queue behind a commit's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

from gateway.errors import StoreUnavailable
from gateway.store.base import (
    DAY_US,
    AppliedChange,
    BlockedQuery,
    BlockedSend,
    ChangeBatch,
    ConsentChange,
    ConsoleSession,
    DailyActivity,
    FollowUp,
    HistoryEntry,
    ImportCounts,
    InboundOutcome,
    OutboxEntry,
    OutboxItem,
    PairCursor,
    RecordQuery,
    ReviewEntry,
    SendSlotRequest,
    SuppressionList,
    SuppressionRefresh,
)
from policy.consent import (
    ConsentRecord,
    OptStatus,
    Source,
    Suppression,
    SuppressionKind,
    supersedes,
)
from policy.frequency_caps import Cap, admits

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE consent (
        to_key TEXT NOT NULL,
        from_key TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('OptIn', 'OptOut')),
        source TEXT NOT NULL,
        modified_us INTEGER NOT NULL,
        note TEXT,
        evidence TEXT,
        PRIMARY KEY (to_key, from_key)
    ) WITHOUT ROWID;
    CREATE TABLE consent_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        from_key TEXT NOT NULL,
        to_key TEXT NOT NULL,
        old_status TEXT,
        new_status TEXT,
        source TEXT NOT NULL,
        actor TEXT NOT NULL,
        modified_us INTEGER NOT NULL,
        note TEXT,
        evidence TEXT
    );
    CREATE INDEX consent_history_to ON consent_history (to_key, id);
    CREATE TABLE blocked_send (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_us INTEGER NOT NULL,
        dialect TEXT NOT NULL,
        from_key TEXT NOT NULL,
        to_key TEXT NOT NULL,
        reason TEXT NOT NULL,
        request_id TEXT NOT NULL,
        text_length INTEGER NOT NULL,
        text_sha256 TEXT NOT NULL,
        text TEXT
    );
    CREATE INDEX blocked_send_at ON blocked_send (at_us);
    CREATE TABLE footer_sent (
        to_key TEXT NOT NULL,
        from_key TEXT NOT NULL,
        PRIMARY KEY (to_key, from_key)
    ) WITHOUT ROWID;
    CREATE TABLE service_number (
        number_key TEXT PRIMARY KEY,
        service_key TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE clock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_us INTEGER NOT NULL
    );
    INSERT INTO clock (id, last_us) VALUES (1, 0);
    """,
    """
    CREATE TABLE inbound_message (
        provider TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_us INTEGER NOT NULL,
        PRIMARY KEY (provider, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        not_before_us INTEGER NOT NULL,
        deadline_us INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until_us INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        ordering_key TEXT,
        in_flight INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'given-up')),
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (state, not_before_us);
    CREATE INDEX outbox_queue ON outbox (ordering_key, state, id);
    CREATE TABLE outbox_worker (
        owner TEXT PRIMARY KEY,
        heartbeat_us INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE setting (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE change_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_us INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('pair', 'all', 'services')),
        from_key TEXT,
        to_key TEXT
    );
    INSERT INTO change_log (at_us, kind) VALUES (0, 'all');
    """,
    """
    CREATE INDEX blocked_send_to ON blocked_send (to_key, id);
    CREATE INDEX blocked_send_from ON blocked_send (from_key, id);
    CREATE INDEX consent_history_time ON consent_history (modified_us);
    CREATE TABLE console_session (
        id_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX console_session_expiry ON console_session (expires_us);
    """,
    """
    CREATE TABLE send_slot (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        to_key TEXT NOT NULL,
        at_us INTEGER NOT NULL
    );
    CREATE INDEX send_slot_to ON send_slot (to_key, at_us);
    """,
    """
    CREATE TABLE suppression_list (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('internal', 'dnc', 'reassigned')),
        listed_us INTEGER NOT NULL,
        imported_us INTEGER NOT NULL,
        members INTEGER NOT NULL,
        note TEXT,
        generation INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE suppression (
        to_key TEXT NOT NULL,
        list_name TEXT NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (to_key, list_name, generation)
    ) WITHOUT ROWID;
    CREATE INDEX suppression_members ON suppression (list_name, generation, to_key);
    """,
    # 7: inbound messages the plain-language classifier found unclear, for compliance review.
    """
    CREATE TABLE review (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_us INTEGER NOT NULL,
        provider TEXT NOT NULL,
        message_id TEXT NOT NULL,
        from_key TEXT NOT NULL,
        to_key TEXT NOT NULL,
        text TEXT NOT NULL,
        rule TEXT NOT NULL,
        explanation TEXT NOT NULL,
        language TEXT NOT NULL,
        clarified INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'opted-out', 'dismissed')),
        resolved_us INTEGER,
        resolved_by TEXT,
        UNIQUE (provider, message_id)
    );
    CREATE INDEX review_pair ON review (to_key, from_key, created_us);
    CREATE INDEX review_status ON review (status, id);
    """,
    # 8: the pending outbox in the order its entries fall due, so a claim reads the first few
    # it may take instead of sorting every due entry: with thousands pending (a STOP burst's
    # confirmations) that sort took milliseconds, inside the commit the webhooks wait for.
    """
    CREATE INDEX outbox_pending_due ON outbox (not_before_us, id) WHERE state = 'pending';
    DROP INDEX outbox_due;
    """,
    # 9: the entries of no ordered queue apart from the ordered queues' (pending entries only):
    # a claim reads the first free entries in due order and each queue's head, never the
    # entries waiting behind a head, however many a subscriber's outage leaves there.
    """
    CREATE INDEX outbox_pending_free ON outbox (not_before_us, id)
        WHERE state = 'pending' AND ordering_key IS NULL;
    CREATE INDEX outbox_pending_queue ON outbox (ordering_key, id)
        WHERE state = 'pending' AND ordering_key IS NOT NULL;
    DROP INDEX outbox_pending_due;
    DROP INDEX outbox_queue;
    """,
)

_REVIEW_COLUMNS = (
    "id, created_us, provider, message_id, from_key, to_key, text, rule, explanation, language,"
    " clarified, status, resolved_us, resolved_by"
)


def _review(row: Sequence[Any]) -> ReviewEntry:
    values = list(row)
    values[10] = bool(values[10])  # clarified: stored as 0/1
    return ReviewEntry(*values)


_RECORD_COLUMNS = "from_key, to_key, status, source, modified_us, note, evidence"


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause of the conditions whose value is given (not None, not empty), with
    their parameters. A fragment's ``{}`` becomes one placeholder per value of a sequence
    (``status IN ({})``); a tuple value fills the fragment's own placeholders in order."""
    fragments: list[str] = []
    params: list[Any] = []
    for fragment, value in conditions:
        if value is None or (isinstance(value, tuple | list) and not value):
            continue
        if "{}" in fragment:
            fragments.append(fragment.format(",".join("?" * len(value))))
            params.extend(value)
        elif isinstance(value, tuple):
            fragments.append(fragment)
            params.extend(value)
        else:
            fragments.append(fragment)
            params.append(value)
    return (f"WHERE {' AND '.join(fragments)}" if fragments else ""), params


def _records_query(to_key: str, from_keys: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    marks = ",".join("?" * len(from_keys))
    sql = f"SELECT {_RECORD_COLUMNS} FROM consent WHERE to_key = ? AND from_key IN ({marks})"
    return sql, (to_key, *from_keys)


def _record(row: Sequence[Any]) -> ConsentRecord:
    return ConsentRecord(row[0], row[1], OptStatus(row[2]), Source(row[3]), row[4], row[5], row[6])


_SUPPRESSIONS_OF = (
    "SELECT l.name, l.kind, l.listed_us FROM suppression s JOIN suppression_list l"
    " ON l.name = s.list_name AND l.generation = s.generation WHERE s.to_key = ? ORDER BY l.name"
)
_DELETE_STALE = (
    "DELETE FROM suppression WHERE (to_key, list_name, generation) IN (SELECT to_key,"
    " list_name, generation FROM suppression WHERE list_name = ? AND generation <> ? LIMIT ?)"
)
SUPPRESSION_DELETE_BATCH = 5000
SUPPRESSION_DELETE_PAUSE = 0.05
_COUNT_STAGED = (
    "SELECT count(*), coalesce(sum(NOT EXISTS (SELECT 1 FROM suppression o"
    " WHERE o.list_name = ? AND o.generation = ? AND o.to_key = n.to_key)), 0)"
    " FROM suppression n WHERE n.list_name = ? AND n.generation = ?"
)


_OUTBOX_COLUMNS = (
    "o.id, o.kind, o.payload, o.created_us, o.not_before_us, o.deadline_us, o.attempts, o.in_flight"
)
_CLAIMABLE = (
    "o.not_before_us <= :now AND (o.lease_until_us <= :now OR (o.lease_owner IS NOT NULL"
    " AND o.lease_owner != :owner AND NOT EXISTS (SELECT 1 FROM outbox_worker w"
    " WHERE w.owner = o.lease_owner AND w.heartbeat_us > :alive_after)))"
)
"""Due, and held by no live worker (a lease run out, or its owner's heartbeat gone)."""
CLAIM_FREE = (
    f"SELECT {_OUTBOX_COLUMNS} FROM outbox o"
    f" WHERE o.state = 'pending' AND o.ordering_key IS NULL AND {_CLAIMABLE}"
    # The order of the outbox_pending_free index: read in order, the scan stops at ``limit``.
    " ORDER BY o.not_before_us, o.id LIMIT :limit"
)
"""The first entries of no ordered queue that a claim may take."""
CLAIM_HEADS = (
    # Each ordered queue's key, found by one seek after the one before in the
    # outbox_pending_queue index, and its head, by one more: the entries waiting behind a head
    # (a subscriber that is down holds its events for days) are never read.
    "WITH RECURSIVE queue(ordering_key) AS ("
    " SELECT min(ordering_key) FROM outbox WHERE state = 'pending' AND ordering_key IS NOT NULL"
    " UNION ALL SELECT (SELECT min(q.ordering_key) FROM outbox q"
    " WHERE q.state = 'pending' AND q.ordering_key > queue.ordering_key)"
    " FROM queue WHERE queue.ordering_key IS NOT NULL)"
    f" SELECT {_OUTBOX_COLUMNS} FROM queue JOIN outbox o ON o.id = (SELECT h.id FROM outbox h"
    " WHERE h.state = 'pending' AND h.ordering_key = queue.ordering_key"
    # In the queue index's own order, so the head is its first entry (never the primary key
    # read until one of the queue's turns up).
    " ORDER BY h.ordering_key, h.id LIMIT 1)"
    f" WHERE {_CLAIMABLE}"
)
"""The head of each ordered queue, if a claim may take it (only a head may go: the entries
behind it wait their turn)."""


def _due_order(row: Sequence[Any]) -> tuple[int, int]:
    """An outbox row's place in the order entries are handed out: due time, then queued."""
    return (row[4], row[0])


def _suppression_list(row: Sequence[Any]) -> SuppressionList:
    name, kind, listed_us, imported_us, members, note = row
    return SuppressionList(name, SuppressionKind(kind), listed_us, imported_us, members, note)


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves so a unit of work is one transaction.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsync'd, so an acknowledged write survives a crash or power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _unavailable(exc: Exception) -> StoreUnavailable:
    """What a failure of the file, the library or our own thread means to callers."""
    if isinstance(exc, sqlite3.Error):
        return StoreUnavailable(f"sqlite: {exc}")
    if isinstance(exc, OSError):
        return StoreUnavailable(f"sqlite file: {exc}")
    if isinstance(exc, UnicodeError):
        # Text no store can encode reached the store: refuse (fail closed), never a 500.
        return StoreUnavailable(f"sqlite: text cannot be stored ({type(exc).__name__})")
    # RuntimeError: no thread could be started for the connection, or the work raised one.
    return StoreUnavailable(f"sqlite store: {exc}")


class _GroupCommit:
    """Write units arriving together share one transaction, so one commit (one fsync).

    A unit is a function doing its writes on the connection without BEGIN or COMMIT. The first
    caller's task runs everything queued so far in one ``BEGIN IMMEDIATE`` … ``COMMIT``, each
    unit inside a savepoint, and keeps going while more arrive; every caller's result is
    returned only after that commit, so "durable when it returns" holds for each. A unit that
    fails on its own (bad text; a statement the database refuses while the transaction lives
    on, such as a column an older schema lacks or a row it cannot decode) is rolled back to its
    savepoint and fails alone; a failure that ends the transaction (an I/O error, a full disk)
    or the commit fails the whole batch, nothing of which was committed. Either way each caller
    sees what it would have seen alone. Under a burst of STOPs this turns one fsync per webhook
    into one per batch, and the outbox's bookkeeping rides in the same commits.
    """

    MAX_UNITS = 256

    def __init__(self, thread: _ConnectionThread) -> None:
        self._thread = thread
        self._queued: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((unit, future))
        if self._task is None or self._task.done():
            # A task of its own: a caller that goes away never strands the others' units.
            self._task = asyncio.create_task(self._drain(), name="stopgate-sqlite-commit")
        return await future

    async def _drain(self) -> None:
        while self._queued:
            batch = self._queued[: self.MAX_UNITS]
            del self._queued[: self.MAX_UNITS]
            units = [unit for unit, _ in batch]
            try:
                outcomes = await self._thread.run(functools.partial(self._run_batch, units=units))
            except Exception as exc:  # StoreUnavailable: every unit of the batch fails
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for (_, waiter), (ok, value) in zip(batch, outcomes, strict=True):
                if waiter.done():
                    continue
                if ok:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(value)

    @staticmethod
    def _run_batch(
        conn: sqlite3.Connection, *, units: Sequence[Callable[[sqlite3.Connection], Any]]
    ) -> list[tuple[bool, Any]]:
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[tuple[bool, Any]] = []
        for unit in units:
            conn.execute("SAVEPOINT unit")
            try:
                value = unit(conn)
            except Exception as exc:
                if isinstance(exc, sqlite3.OperationalError) and not conn.in_transaction:
                    raise  # the database ended the transaction: every unit of it fails
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                failed = isinstance(exc, sqlite3.Error | UnicodeError)
                outcomes.append((False, _unavailable(exc) if failed else exc))
            else:
                conn.execute("RELEASE unit")
                outcomes.append((True, value))
        conn.execute("COMMIT")
        return outcomes


class _ConnectionThread:
    """One sqlite3 connection used only from its own thread, which runs the work handed to it
    one piece at a time, in order.

    A queue and a thread of its own rather than an executor: handing a piece of work over and
    its answer back costs a queue put and one ``call_soon_threadsafe`` this way, against some
    twenty interpreted calls through ``run_in_executor`` (a future of each kind, a condition, a
    semaphore), and a STOP burst hands work over several times per webhook. The thread holds
    only the queue and its :class:`_Worker`, so a store dropped without ``close()`` still ends
    it (and closes the connection) when collected, as an executor's worker would.
    """

    def __init__(self, path: str, name: str, busy_timeout: float) -> None:
        self._name = name
        self._worker = _Worker(path, busy_timeout)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        try:
            if self._thread is None:
                self._start()
            self._jobs.put((work, future, loop))
            return await future
        except (sqlite3.Error, OSError, RuntimeError, UnicodeError) as exc:
            raise _unavailable(exc) from exc

    def _start(self) -> None:
        thread = threading.Thread(
            target=self._worker.serve, args=(self._jobs,), name=self._name, daemon=True
        )
        thread.start()  # RuntimeError when no thread can be had: the store is unavailable
        self._thread = thread
        weakref.finalize(self, self._jobs.put, None)

    async def close(self) -> None:
        """Runs the work handed over before, then closes the connection and ends the thread."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        self._jobs.put((_CLOSE, closed, loop))
        self._jobs.put(None)
        with contextlib.suppress(sqlite3.Error):
            await closed
        thread.join()  # at once: the thread has nothing left to do


class _Worker:
    """The thread's side of a :class:`_ConnectionThread`: the connection, opened on first use,
    and the loop that runs the jobs."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    def serve(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        """Each job's work, its outcome handed back to the job's event loop; then, at the end
        (``None``), the connection closed."""
        while (job := jobs.get()) is not None:
            work, future, loop = job
            if future.cancelled():  # its caller is gone before it started (a benign race)
                continue
            try:
                outcome: tuple[bool, Any] = (True, self._call(work))
            except BaseException as exc:  # every outcome goes back to its caller
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, *outcome)
        self._close()

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if work is _CLOSE:
            self._close()
            return cast(T, None)
        if self._conn is None:
            self._conn = _connect(self._path, self._busy_timeout)
        try:
            return work(self._conn)
        except BaseException:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _CLOSE(conn: sqlite3.Connection) -> None:
    """The closing job's work (never called: :meth:`_Worker._call` recognises it)."""


_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # cancelled while its work ran
        return
    if ok:
        future.set_result(value)
    elif isinstance(value, StopIteration):
        # A future refuses StopIteration (it would end the awaiting coroutine silently).
        future.set_exception(RuntimeError(f"store work raised {value!r}"))
    else:
        future.set_exception(value)


DEFAULT_BUSY_TIMEOUT = 5.0
CHANGE_LOG_BULK = 256
"""Above this many pairs in one transaction, the change log says "flush all" once."""
CHANGE_LOG_KEEP_US = 600 * 1_000_000


def parse_url(url: str) -> tuple[str, float]:
    """``sqlite:///./stopgate.db`` -> ``./stopgate.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``.
    ``?busy_timeout=SECONDS`` bounds how long a write waits for another writer's lock before
    the store counts as unavailable. ``sqlite:///:memory:`` is refused (two connections would
    see two databases)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///PATH)")
    path, _, query = url[len("sqlite:///") :].partition("?")
    if not path or path == ":memory:":
        raise ValueError("the SQLite store needs a file path")
    options = dict(parse_qsl(query))
    unknown = set(options) - {"busy_timeout"}
    if unknown:
        raise ValueError(f"unknown sqlite URL options: {', '.join(sorted(unknown))}")
    return path, float(options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT))


class SQLiteStore:
    """:class:`gateway.store.base.ConsentStore` on an SQLite file."""

    url_scheme = "sqlite"
    pushes_changes = False

    def __init__(self, url: str) -> None:
        self.path, busy_timeout = parse_url(url)
        self._writer = _ConnectionThread(self.path, "sqlite-writer", busy_timeout)
        self._reader = _ConnectionThread(self.path, "sqlite-reader", busy_timeout)
        self._commits = _GroupCommit(self._writer)
        self._probe: sqlite3.Connection | None = None
        self._quiet: tuple[int, int] | None = None
        """(cursor, data version) of the last poll: the same version means nothing new since."""

    async def open(self) -> None:
        parent = Path(self.path).parent
        if not parent.exists():
            raise StoreUnavailable(f"directory {parent} does not exist")
        await self._writer.run(self._migrate)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")

    async def close(self) -> None:
        self._close_probe()
        await self._writer.close()
        await self._reader.close()

    async def ping(self) -> None:
        await self._reader.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def get_records(self, to_key: str, from_keys: Sequence[str]) -> dict[str, ConsentRecord]:
        if not from_keys:
            return {}
        sql, params = _records_query(to_key, from_keys)

        def work(conn: sqlite3.Connection) -> dict[str, ConsentRecord]:
            return {row[0]: _record(row) for row in conn.execute(sql, params)}

        return await self._reader.run(work)

    async def get_records_many(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, ConsentRecord]]:
        def work(conn: sqlite3.Connection) -> list[dict[str, ConsentRecord]]:
            found: list[dict[str, ConsentRecord]] = []
            for to_key, from_keys in lookups:
                rows = conn.execute(*_records_query(to_key, from_keys)) if from_keys else ()
                found.append({row[0]: _record(row) for row in rows})
            return found

        return await self._reader.run(work)

    async def apply(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> list[AppliedChange]:
        return await self._commits.run(lambda conn: self._apply_unit(conn, changes, follow_up))

    async def import_changes(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> ImportCounts:
        results = await self.apply(changes, follow_up)
        applied = sum(r.applied for r in results)
        return ImportCounts(applied, len(results) - applied)

    @staticmethod
    def _apply_unit(
        conn: sqlite3.Connection, changes: Sequence[ConsentChange], follow_up: FollowUp | None
    ) -> list[AppliedChange]:
        results = SQLiteStore._apply_in_transaction(conn, changes)
        if follow_up is not None:
            now_us = time.time_ns() // 1000
            SQLiteStore._queue(conn, follow_up([r for r in results if r.applied]), now_us)
        return results

    @staticmethod
    def _queue(conn: sqlite3.Connection, items: Sequence[OutboxItem], now_us: int) -> list[int]:
        ids: list[int] = []
        for item in items:
            cursor = conn.execute(
                "INSERT INTO outbox (kind, payload, created_us, not_before_us, deadline_us,"
                " ordering_key) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.kind,
                    item.payload,
                    now_us,
                    item.not_before_us,
                    item.deadline_us,
                    item.ordering_key,
                ),
            )
            ids.append(int(cursor.lastrowid or 0))
        return ids

    @staticmethod
    def _apply_in_transaction(
        conn: sqlite3.Connection, changes: Sequence[ConsentChange]
    ) -> list[AppliedChange]:
        last_us: int = conn.execute("SELECT last_us FROM clock WHERE id = 1").fetchone()[0]
        stamped_any = False
        results: list[AppliedChange] = []
        for change in changes:
            if change.modified_us is None:
                # Strictly increasing across writers sharing the file: the clock row is read and
                # advanced inside the same IMMEDIATE transaction.
                last_us = max(time.time_ns() // 1000, last_us + 1)
                stamped_any = True
                modified_us = last_us
            else:
                modified_us = change.modified_us
            record = ConsentRecord(
                change.from_key,
                change.to_key,
                change.status,
                change.source,
                modified_us,
                change.note,
                change.evidence,
            )
            row = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM consent WHERE to_key = ? AND from_key = ?",
                (change.to_key, change.from_key),
            ).fetchone()
            current = _record(row) if row else None
            if not supersedes(record, current):
                results.append(AppliedChange(current or record, None, applied=False))
                continue
            conn.execute(
                "INSERT INTO consent (to_key, from_key, status, source, modified_us, note,"
                " evidence) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (to_key, from_key) DO UPDATE SET status = excluded.status,"
                " source = excluded.source, modified_us = excluded.modified_us,"
                " note = excluded.note, evidence = excluded.evidence",
                (
                    record.to_key,
                    record.from_key,
                    record.status.value,
                    record.source.value,
                    record.modified_us,
                    record.note,
                    record.evidence,
                ),
            )
            previous = current.status if current else None
            conn.execute(
                "INSERT INTO consent_history (from_key, to_key, old_status, new_status, source,"
                " actor, modified_us, note, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.from_key,
                    record.to_key,
                    previous.value if previous else None,
                    record.status.value,
                    record.source.value,
                    change.actor,
                    record.modified_us,
                    record.note,
                    record.evidence,
                ),
            )
            if record.status is OptStatus.OPT_IN:
                conn.execute(
                    "DELETE FROM footer_sent WHERE to_key = ? AND from_key = ?",
                    (record.to_key, record.from_key),
                )
            results.append(AppliedChange(record, previous, applied=True))
        if stamped_any:
            conn.execute("UPDATE clock SET last_us = ? WHERE id = 1", (last_us,))
        SQLiteStore._log_changes(
            conn, [(r.record.from_key, r.record.to_key) for r in results if r.applied]
        )
        return results

    @staticmethod
    def _log_changes(
        conn: sqlite3.Connection, pairs: Sequence[tuple[str, str]], kind: str = "pair"
    ) -> None:
        """Tell the other processes on this file which cache entries went stale (a bulk write
        says "all" once instead of once per pair)."""
        if not pairs and kind == "pair":
            return
        now_us = time.time_ns() // 1000
        if kind != "pair" or len(pairs) > CHANGE_LOG_BULK:
            conn.execute(
                "INSERT INTO change_log (at_us, kind) VALUES (?, ?)",
                (now_us, "all" if kind == "pair" else kind),
            )
            return
        conn.executemany(
            "INSERT INTO change_log (at_us, kind, from_key, to_key) VALUES (?, 'pair', ?, ?)",
            [(now_us, f, t) for f, t in pairs],
        )

    async def list_records(
        self,
        query: RecordQuery,
        *,
        after: PairCursor | None,
        limit: int,
        before: PairCursor | None = None,
    ) -> list[ConsentRecord]:
        clause, params = _where(
            ("(to_key, from_key) > (?, ?)", after),
            ("(to_key, from_key) < (?, ?)", before),
            ("to_key = ?", query.to_key),
            ("from_key IN ({})", list(query.from_keys)),
            ("status IN ({})", [status.value for status in query.statuses]),
            ("modified_us >= ?", query.modified_from_us),
            ("modified_us < ?", query.modified_to_us),
        )
        order = "DESC" if before is not None else "ASC"
        sql = (
            f"SELECT {_RECORD_COLUMNS} FROM consent {clause}"
            f" ORDER BY to_key {order}, from_key {order} LIMIT ?"
        )
        params.append(limit)

        def work(conn: sqlite3.Connection) -> list[ConsentRecord]:
            rows = [_record(row) for row in conn.execute(sql, params)]
            return rows[::-1] if before is not None else rows

        return await self._reader.run(work)

    async def history(
        self, *, to_key: str | None, from_key: str | None, after_id: int | None, limit: int
    ) -> list[HistoryEntry]:
        clause, params = _where(
            ("to_key = ?", to_key), ("from_key = ?", from_key), ("id > ?", after_id)
        )
        sql = (
            "SELECT id, from_key, to_key, old_status, new_status, source, actor, modified_us,"
            f" note, evidence FROM consent_history {clause} ORDER BY id LIMIT ?"
        )
        params.append(limit)

        def work(conn: sqlite3.Connection) -> list[HistoryEntry]:
            return [
                HistoryEntry(
                    row[0],
                    row[1],
                    row[2],
                    OptStatus(row[3]) if row[3] else None,
                    OptStatus(row[4]) if row[4] else None,
                    Source(row[5]),
                    row[6],
                    row[7],
                    row[8],
                    row[9],
                )
                for row in conn.execute(sql, params)
            ]

        return await self._reader.run(work)

    async def log_blocked_many(self, entries: Sequence[BlockedSend]) -> None:
        rows = [
            (
                e.at_us,
                e.dialect,
                e.from_key,
                e.to_key,
                e.reason,
                e.request_id,
                e.text_length,
                e.text_sha256,
                e.text,
            )
            for e in entries
        ]

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO blocked_send (at_us, dialect, from_key, to_key, reason, request_id,"
                " text_length, text_sha256, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")

        await self._writer.run(work)

    async def log_blocked(self, entry: BlockedSend) -> None:
        await self.log_blocked_many([entry])

    async def blocked_sends(
        self, *, before_id: int | None, limit: int
    ) -> list[tuple[int, BlockedSend]]:
        return await self.find_blocked(BlockedQuery(), before_id=before_id, limit=limit)

    @staticmethod
    def _blocked_where(query: BlockedQuery, *extra: tuple[str, Any]) -> tuple[str, list[Any]]:
        return _where(
            ("at_us >= ?", query.from_us),
            ("at_us < ?", query.to_us),
            ("from_key = ?", query.from_key),
            ("to_key = ?", query.to_key),
            ("reason IN ({})", list(query.reasons)),
            ("dialect = ?", query.dialect),
            *extra,
        )

    async def find_blocked(
        self, query: BlockedQuery, *, before_id: int | None, limit: int
    ) -> list[tuple[int, BlockedSend]]:
        clause, params = self._blocked_where(query, ("id < ?", before_id))
        sql = (
            "SELECT id, at_us, dialect, from_key, to_key, reason, request_id, text_length,"
            f" text_sha256, text FROM blocked_send {clause} ORDER BY id DESC LIMIT ?"
        )
        params.append(limit)

        def work(conn: sqlite3.Connection) -> list[tuple[int, BlockedSend]]:
            return [(row[0], BlockedSend(*row[1:])) for row in conn.execute(sql, params)]

        return await self._reader.run(work)

    async def blocked_totals(self, query: BlockedQuery) -> dict[str, int]:
        clause, params = self._blocked_where(query)
        sql = f"SELECT reason, count(*) FROM blocked_send {clause} GROUP BY reason"

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            return {str(reason): int(count) for reason, count in conn.execute(sql, params)}

        return await self._reader.run(work)

    async def daily_activity(self, *, from_us: int, to_us: int) -> list[DailyActivity]:
        sql = (
            "SELECT day, sum(blocked), sum(opted_out) FROM ("
            " SELECT at_us / ? AS day, 1 AS blocked, 0 AS opted_out FROM blocked_send"
            " WHERE at_us >= ? AND at_us < ?"
            " UNION ALL"
            " SELECT modified_us / ?, 0, 1 FROM consent_history"
            " WHERE new_status = 'OptOut' AND modified_us >= ? AND modified_us < ?"
            ") GROUP BY day ORDER BY day"
        )
        params = (DAY_US, from_us, to_us, DAY_US, from_us, to_us)

        def work(conn: sqlite3.Connection) -> list[DailyActivity]:
            return [
                DailyActivity(int(day), int(blocked), int(opted_out))
                for day, blocked, opted_out in conn.execute(sql, params)
            ]

        return await self._reader.run(work)

    async def create_console_session(self, session: ConsoleSession) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM console_session WHERE expires_us <= ?", (session.created_us,))
            conn.execute(
                "INSERT INTO console_session (id_hash, name, role, csrf_token, created_us,"
                " expires_us) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session.id_hash,
                    session.name,
                    session.role,
                    session.csrf_token,
                    session.created_us,
                    session.expires_us,
                ),
            )
            conn.execute("COMMIT")

        await self._writer.run(work)

    async def console_session(self, id_hash: str, now_us: int) -> ConsoleSession | None:
        def work(conn: sqlite3.Connection) -> ConsoleSession | None:
            row = conn.execute(
                "SELECT id_hash, name, role, csrf_token, created_us, expires_us"
                " FROM console_session WHERE id_hash = ? AND expires_us > ?",
                (id_hash, now_us),
            ).fetchone()
            return None if row is None else ConsoleSession(*row)

        return await self._reader.run(work)

    async def delete_console_session(self, id_hash: str) -> None:
        await self._write_one("DELETE FROM console_session WHERE id_hash = ?", (id_hash,))

    async def add_review(self, entry: ReviewEntry, clarified_since_us: int) -> ReviewEntry | None:
        def work(conn: sqlite3.Connection) -> ReviewEntry | None:
            conn.execute("BEGIN IMMEDIATE")
            clarified = (
                conn.execute(
                    "SELECT 1 FROM review WHERE to_key = ? AND from_key = ? AND clarified = 1"
                    " AND created_us >= ? LIMIT 1",
                    (entry.to_key, entry.from_key, clarified_since_us),
                ).fetchone()
                is None
            )
            row = conn.execute(
                "INSERT INTO review (created_us, provider, message_id, from_key, to_key, text,"
                " rule, explanation, language, clarified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, message_id) DO NOTHING RETURNING id",
                (
                    entry.created_us,
                    entry.provider,
                    entry.message_id,
                    entry.from_key,
                    entry.to_key,
                    entry.text,
                    entry.rule,
                    entry.explanation,
                    entry.language,
                    int(clarified),
                ),
            ).fetchone()
            conn.execute("COMMIT")
            if row is None:
                return None
            return dataclasses.replace(entry, id=row[0], clarified=clarified, status="open")

        return await self._writer.run(work)

    async def reviews(
        self, *, status: str | None, before_id: int | None, limit: int
    ) -> list[ReviewEntry]:
        where, params = _where(("status = ?", status), ("id < ?", before_id))
        sql = f"SELECT {_REVIEW_COLUMNS} FROM review {where} ORDER BY id DESC LIMIT ?"

        def work(conn: sqlite3.Connection) -> list[ReviewEntry]:
            return [_review(row) for row in conn.execute(sql, (*params, limit))]

        return await self._reader.run(work)

    async def resolve_review(
        self, review_id: int, status: str, actor: str, now_us: int
    ) -> ReviewEntry | None:
        def work(conn: sqlite3.Connection) -> ReviewEntry | None:
            row = conn.execute(
                "UPDATE review SET status = ?, resolved_us = ?, resolved_by = ?"
                f" WHERE id = ? AND status = 'open' RETURNING {_REVIEW_COLUMNS}",
                (status, now_us, actor, review_id),
            ).fetchone()
            return None if row is None else _review(row)

        return await self._writer.run(work)

    async def footer_sent(self, from_key: str, to_key: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM footer_sent WHERE to_key = ? AND from_key = ?", (to_key, from_key)
            ).fetchone()
            return row is not None

        return await self._reader.run(work)

    async def mark_footer_sent(self, from_key: str, to_key: str) -> None:
        await self._write_one(
            "INSERT OR IGNORE INTO footer_sent (to_key, from_key) VALUES (?, ?)", (to_key, from_key)
        )

    async def set_service_numbers(self, service_key: str, number_keys: Sequence[str]) -> None:
        rows = [(number, service_key) for number in number_keys]

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO service_number (number_key, service_key) VALUES (?, ?)"
                " ON CONFLICT (number_key) DO UPDATE SET service_key = excluded.service_key",
                rows,
            )
            self._log_changes(conn, [], kind="services")
            conn.execute("COMMIT")

        await self._writer.run(work)

    async def service_of(self, number_key: str) -> str | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT service_key FROM service_number WHERE number_key = ?", (number_key,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._reader.run(work)

    async def service_numbers(self) -> dict[str, str]:
        def work(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute("SELECT number_key, service_key FROM service_number")
            return {str(number): str(service) for number, service in rows}

        return await self._reader.run(work)

    async def record_inbound(
        self,
        provider: str,
        message_id: str,
        received_us: int,
        changes: Sequence[ConsentChange],
        outbox: Sequence[OutboxItem],
        follow_up: FollowUp | None = None,
    ) -> InboundOutcome:
        def unit(conn: sqlite3.Connection) -> InboundOutcome:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO inbound_message (provider, message_id, received_us)"
                " VALUES (?, ?, ?)",
                (provider, message_id, received_us),
            ).rowcount
            if not inserted:
                return InboundOutcome(duplicate=True, applied=[])
            applied = self._apply_in_transaction(conn, changes)
            ids = self._queue(conn, outbox, received_us)
            if follow_up is not None:
                self._queue(conn, follow_up([a for a in applied if a.applied]), received_us)
            return InboundOutcome(duplicate=False, applied=applied, outbox_ids=ids)

        return await self._commits.run(unit)

    async def due_outbox(self, now_us: int, limit: int) -> list[OutboxEntry]:
        def work(conn: sqlite3.Connection) -> list[OutboxEntry]:
            rows = conn.execute(
                "SELECT id, kind, payload, created_us, not_before_us, deadline_us, attempts"
                " FROM outbox WHERE state = 'pending' AND not_before_us <= ?"
                " ORDER BY not_before_us, id LIMIT ?",
                (now_us, limit),
            )
            return [OutboxEntry(*row) for row in rows]

        return await self._reader.run(work)

    async def claim_outbox(
        self, now_us: int, limit: int, lease_us: int, owner: str, stale_us: int
    ) -> list[OutboxEntry]:
        def unit(conn: sqlite3.Connection) -> list[OutboxEntry]:
            parameters = {
                "now": now_us,
                "owner": owner,
                "alive_after": now_us - stale_us,
                "limit": limit,
            }
            found = conn.execute(CLAIM_FREE, parameters).fetchall()
            found += conn.execute(CLAIM_HEADS, parameters).fetchall()
            rows = heapq.nsmallest(limit, found, key=_due_order)
            conn.executemany(
                "UPDATE outbox SET lease_until_us = ?, lease_owner = ? WHERE id = ?",
                [(now_us + lease_us, owner, row[0]) for row in rows],
            )
            return [
                OutboxEntry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))
                for row in rows
            ]

        # The outbox's writes share the inbound path's group commits (one fsync for both), so
        # confirmations sent during a STOP burst do not queue fsyncs of their own before it.
        return await self._commits.run(unit)

    async def outbox_begin(self, entry_id: int) -> None:
        await self._write_one("UPDATE outbox SET in_flight = 1 WHERE id = ?", (entry_id,))

    async def outbox_heartbeat(self, owner: str, now_us: int) -> None:
        await self._write_one(
            "INSERT INTO outbox_worker (owner, heartbeat_us) VALUES (?, ?)"
            " ON CONFLICT (owner) DO UPDATE SET heartbeat_us = excluded.heartbeat_us",
            (owner, now_us),
        )

    async def _finish(self, entry_id: int, state: str, error: str | None) -> None:
        await self._write_one(
            "UPDATE outbox SET state = ?, last_error = ?, attempts = attempts + 1 WHERE id = ?",
            (state, error, entry_id),
        )

    async def _write_one(self, sql: str, params: tuple[Any, ...]) -> None:
        """One statement, durable when this returns, in the next group commit."""

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._commits.run(unit)

    async def outbox_done(self, entry_id: int) -> None:
        await self._finish(entry_id, "done", None)

    async def outbox_give_up(self, entry_id: int, error: str) -> None:
        await self._finish(entry_id, "given-up", error)

    async def outbox_retry(self, entry_id: int, not_before_us: int, error: str) -> None:
        await self._write_one(
            "UPDATE outbox SET not_before_us = ?, last_error = ?, attempts = attempts + 1,"
            " lease_until_us = 0, lease_owner = NULL, in_flight = 0 WHERE id = ?",
            (not_before_us, error, entry_id),
        )

    async def outbox_stats(self, now_us: int) -> tuple[int, int | None]:
        def work(conn: sqlite3.Connection) -> tuple[int, int | None]:
            count, oldest = conn.execute(
                "SELECT count(*), min(created_us) FROM outbox WHERE state = 'pending'"
            ).fetchone()
            return int(count), None if oldest is None else now_us - int(oldest)

        return await self._reader.run(work)

    async def get_value(self, name: str) -> str | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM setting WHERE name = ?", (name,)).fetchone()
            return None if row is None else str(row[0])

        return await self._reader.run(work)

    async def set_value(self, name: str, value: str | None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if value is None:
                conn.execute("DELETE FROM setting WHERE name = ?", (name,))
            else:
                conn.execute(
                    "INSERT INTO setting (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )

        await self._writer.run(work)

    async def delete_records(
        self, pairs: Sequence[tuple[str, str]], actor: str, note: str | None
    ) -> list[ConsentRecord]:
        def work(conn: sqlite3.Connection) -> list[ConsentRecord]:
            conn.execute("BEGIN IMMEDIATE")
            last_us: int = conn.execute("SELECT last_us FROM clock WHERE id = 1").fetchone()[0]
            removed: list[ConsentRecord] = []
            for from_key, to_key in pairs:
                row = conn.execute(
                    f"SELECT {_RECORD_COLUMNS} FROM consent WHERE to_key = ? AND from_key = ?",
                    (to_key, from_key),
                ).fetchone()
                if row is None:
                    continue
                record = _record(row)
                last_us = max(time.time_ns() // 1000, last_us + 1)
                conn.execute(
                    "DELETE FROM consent WHERE to_key = ? AND from_key = ?", (to_key, from_key)
                )
                conn.execute(
                    "INSERT INTO consent_history (from_key, to_key, old_status, new_status,"
                    " source, actor, modified_us, note) VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                    (from_key, to_key, record.status.value, Source.API.value, actor, last_us, note),
                )
                removed.append(record)
            conn.execute("UPDATE clock SET last_us = ? WHERE id = 1", (last_us,))
            self._log_changes(conn, [(r.from_key, r.to_key) for r in removed])
            conn.execute("COMMIT")
            return removed

        return await self._writer.run(work)

    async def erase(self, to_key: str, suppression: ConsentRecord | None) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            removed = 0
            self._log_changes(conn, [], kind="all")
            for table in (
                "consent",
                "consent_history",
                "blocked_send",
                "footer_sent",
                "send_slot",
                "review",
            ):
                removed += conn.execute(f"DELETE FROM {table} WHERE to_key = ?", (to_key,)).rowcount
            if suppression is not None:
                self._apply_in_transaction(
                    conn,
                    [
                        ConsentChange(
                            suppression.from_key,
                            suppression.to_key,
                            suppression.status,
                            suppression.source,
                            actor="erasure",
                            note=suppression.note,
                            modified_us=suppression.modified_us,
                        )
                    ],
                )
            conn.execute("COMMIT")
            return removed

        return await self._writer.run(work)

    async def prune(self, *, blocked_before_us: int | None, history_before_us: int | None) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            removed = 0
            if blocked_before_us is not None:
                removed += conn.execute(
                    "DELETE FROM blocked_send WHERE at_us < ?", (blocked_before_us,)
                ).rowcount
            if history_before_us is not None:
                removed += conn.execute(
                    "DELETE FROM consent_history WHERE modified_us < ?", (history_before_us,)
                ).rowcount
            conn.execute("COMMIT")
            return removed

        return await self._writer.run(work)

    # -- suppression lists ----------------------------------------------------------------------

    async def stage_suppressions(self, name: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT generation FROM suppression_list WHERE name = ?", (name,)
            ).fetchone()
            return 0 if row is None else int(row[0])

        published = await self._reader.run(work)
        # Whatever an unfinished import staged, or an interrupted clean-up left behind.
        await self._release_stale(name, published)
        return published + 1

    async def _release_stale(self, name: str, keep: int) -> None:
        """Delete the rows of ``name`` outside generation ``keep``, a batch per transaction:
        lookups never see them (they join on the published generation), and small
        transactions keep the single writer free for consent changes meanwhile."""

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            deleted = conn.execute(_DELETE_STALE, (name, keep, SUPPRESSION_DELETE_BATCH)).rowcount
            conn.execute("COMMIT")
            return int(deleted)

        deleted = SUPPRESSION_DELETE_BATCH
        while deleted == SUPPRESSION_DELETE_BATCH:
            deleted = await self._writer.run(work)
            # A pause between batches: another process's writer, sleeping in SQLite's busy
            # handler, would otherwise seldom find the lock free (a STOP stuck behind a purge).
            await asyncio.sleep(SUPPRESSION_DELETE_PAUSE if deleted else 0)

    async def add_suppressions(self, name: str, generation: int, to_keys: Sequence[str]) -> None:
        rows = [(key, name, generation) for key in to_keys]

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR IGNORE INTO suppression (to_key, list_name, generation)"
                " VALUES (?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")

        await self._writer.run(work)

    async def publish_suppressions(
        self, name: str, generation: int, kind: SuppressionKind, listed_us: int, note: str | None
    ) -> SuppressionRefresh:
        def count(conn: sqlite3.Connection) -> tuple[int, int, int]:
            row = conn.execute(
                "SELECT generation, members FROM suppression_list WHERE name = ?", (name,)
            ).fetchone()
            old_generation, old_members = (0, 0) if row is None else (int(row[0]), int(row[1]))
            members, added = conn.execute(
                _COUNT_STAGED, (name, old_generation, name, generation)
            ).fetchone()
            return int(members), int(added), old_members

        # Counted on the reader, outside the write lock (one import per list at a time).
        members, added, old_members = await self._reader.run(count)

        def work(conn: sqlite3.Connection) -> SuppressionRefresh:
            conn.execute("BEGIN IMMEDIATE")
            imported_us = time.time_ns() // 1000
            conn.execute(
                "INSERT INTO suppression_list (name, kind, listed_us, imported_us, members, note,"
                " generation) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " kind = excluded.kind, listed_us = excluded.listed_us,"
                " imported_us = excluded.imported_us, members = excluded.members,"
                " note = excluded.note, generation = excluded.generation",
                (name, kind.value, listed_us, imported_us, members, note, generation),
            )
            self._log_changes(conn, [], kind="all")
            conn.execute("COMMIT")
            listed = SuppressionList(name, kind, listed_us, imported_us, members, note)
            return SuppressionRefresh(listed, added, old_members - (members - added))

        refresh = await self._writer.run(work)
        await self._release_stale(name, generation)
        return refresh

    async def drop_suppression_list(self, name: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "DELETE FROM suppression_list WHERE name = ? RETURNING members", (name,)
            ).fetchone()
            if row is not None:
                self._log_changes(conn, [], kind="all")
            conn.execute("COMMIT")
            return 0 if row is None else int(row[0])

        released = await self._writer.run(work)
        await self._release_stale(name, 0)  # generations start at 1: every row goes
        return released

    async def suppressions_of(self, to_key: str) -> list[Suppression]:
        def work(conn: sqlite3.Connection) -> list[Suppression]:
            rows = conn.execute(_SUPPRESSIONS_OF, (to_key,))
            return [Suppression(n, SuppressionKind(k), int(t)) for n, k, t in rows]

        return await self._reader.run(work)

    async def suppression_lists(self) -> list[SuppressionList]:
        def work(conn: sqlite3.Connection) -> list[SuppressionList]:
            rows = conn.execute(
                "SELECT name, kind, listed_us, imported_us, members, note"
                " FROM suppression_list ORDER BY name"
            )
            return [_suppression_list(row) for row in rows]

        return await self._reader.run(work)

    async def suppression_members(self, name: str, *, after: str | None, limit: int) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT s.to_key FROM suppression s JOIN suppression_list l"
                " ON l.name = s.list_name AND l.generation = s.generation"
                " WHERE s.list_name = ? AND s.to_key > ? ORDER BY s.to_key LIMIT ?",
                (name, after or "", limit),
            )
            return [str(row[0]) for row in rows]

        return await self._reader.run(work)

    async def changes_since(self, cursor: int | None) -> ChangeBatch:
        # Most polls find nothing new. ``PRAGMA data_version`` changes whenever another
        # connection commits; read on the event loop's own thread (a few µs, no lock wait), it
        # spares those polls the trip to the reader thread. Read before the query, so a commit
        # racing the query changes it again and the next poll looks.
        version = self._data_version()
        if cursor is not None and version is not None and (cursor, version) == self._quiet:
            return ChangeBatch(cursor, flush_all=False, services=False, pairs=())

        def work(conn: sqlite3.Connection) -> ChangeBatch:
            if cursor is None:
                (head,) = conn.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()
                return ChangeBatch(int(head), flush_all=True, services=True, pairs=())
            rows = conn.execute(
                "SELECT seq, kind, from_key, to_key FROM change_log WHERE seq > ? ORDER BY seq"
                " LIMIT ?",
                (cursor, CHANGE_LOG_BULK + 1),
            ).fetchall()
            if not rows:
                oldest = conn.execute("SELECT min(seq) FROM change_log").fetchone()[0]
                # Entries this reader never saw were pruned: it cannot know what changed.
                gap = oldest is not None and oldest > cursor + 1
                return ChangeBatch(cursor, flush_all=gap, services=gap, pairs=())
            kinds = {row[1] for row in rows}
            return ChangeBatch(
                int(rows[-1][0]),
                flush_all="all" in kinds or len(rows) > CHANGE_LOG_BULK,
                services="services" in kinds,
                pairs=tuple((row[2], row[3]) for row in rows if row[1] == "pair"),
            )

        batch = await self._reader.run(work)
        self._quiet = (batch.cursor, version) if version is not None else None
        return batch

    def _data_version(self) -> int | None:
        """The file's data version, or None when it cannot be read at once (then the feed
        asks the reader thread, which reports the store's state properly)."""
        try:
            if self._probe is None:
                # timeout=0: never wait for a lock on the event loop's thread.
                self._probe = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0
                )
            return int(self._probe.execute("PRAGMA data_version").fetchone()[0])
        except (sqlite3.Error, OSError):
            self._close_probe()
            return None

    def _close_probe(self) -> None:
        if self._probe is not None:
            with contextlib.suppress(sqlite3.Error):
                self._probe.close()
            self._probe = None

    async def prune_changes(self, before_us: int) -> None:
        await self._writer.run(
            lambda conn: conn.execute(
                "DELETE FROM change_log WHERE at_us < ?"
                " AND seq < (SELECT max(seq) FROM change_log)",
                (before_us,),
            )
        )

    async def wait_for_changes(self, within: float) -> bool:
        # Nothing pushes here: the feed polls the change log at its interval.
        await asyncio.sleep(within)
        return False

    async def take_send_slots(
        self, requests: Sequence[SendSlotRequest], now_us: int
    ) -> list[int | None]:
        def work(conn: sqlite3.Connection) -> list[int | None]:
            # BEGIN IMMEDIATE takes the file's write lock first: every process counts in turn.
            conn.execute("BEGIN IMMEDIATE")
            slots: list[int | None] = []
            for request in requests:
                since = now_us - request.window_us
                conn.execute(
                    "DELETE FROM send_slot WHERE to_key = ? AND at_us <= ?", (request.to_key, since)
                )
                sent = [
                    row[0]
                    for row in conn.execute(
                        "SELECT at_us FROM send_slot WHERE to_key = ?", (request.to_key,)
                    )
                ]
                if admits(sent, now_us, Cap(request.limit, request.window_us)):
                    cursor = conn.execute(
                        "INSERT INTO send_slot (to_key, at_us) VALUES (?, ?)",
                        (request.to_key, now_us),
                    )
                    slots.append(cursor.lastrowid)
                else:
                    slots.append(None)
            conn.execute("COMMIT")
            return slots

        return await self._writer.run(work)

    async def release_send_slots(self, slot_ids: Sequence[int]) -> None:
        ids = [(slot_id,) for slot_id in slot_ids]
        if not ids:
            return

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM send_slot WHERE id = ?", ids)
            conn.execute("COMMIT")

        await self._writer.run(work)

    async def prune_send_slots(self, before_us: int, limit: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            removed = conn.execute(PRUNE_SEND_SLOTS, (before_us, limit)).rowcount
            conn.execute("COMMIT")
            return int(removed)

        return await self._writer.run(work)

    async def send_slot_times(self, to_key: str, since_us: int) -> list[int]:
        def work(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(SEND_SLOT_TIMES, (to_key, since_us))
            return [int(row[0]) for row in rows]

        return await self._reader.run(work)


# Ids grow with time, so the oldest slots are found first walking the primary key; the batch
# keeps the write lock short while sends wait to take theirs.
PRUNE_SEND_SLOTS = """
    DELETE FROM send_slot WHERE id IN
        (SELECT id FROM send_slot WHERE at_us <= ? ORDER BY id LIMIT ?)
"""
SEND_SLOT_TIMES = "SELECT at_us FROM send_slot WHERE to_key = ? AND at_us > ? ORDER BY at_us"
