"""The SQLite store's outbox claims: what one costs does not grow with the entries pending
behind it, and a file made before the outbox had its due-order index gets it on opening.

A claim runs inside the group commit that STOP webhooks wait for, so its cost is theirs. The
cost is counted in SQLite's own virtual-machine steps (a progress handler), which are the same
on any machine, rather than timed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.base import OutboxItem
from gateway.store.sqlite import CLAIM_OUTBOX, MIGRATIONS, SQLiteStore

NOW = 10**15
LIMIT = 50


async def _new_file(path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()


def _queue(conn: sqlite3.Connection, pending: int, done: int) -> None:
    """``pending`` due entries (the first ``LIMIT`` leased to a live worker, as in flight) and
    ``done`` delivered ones, as a burst's confirmations leave them."""
    rows = [(NOW - pending + i, NOW - pending + i) for i in range(pending)]
    with conn:
        conn.executemany(
            "INSERT INTO outbox (kind, payload, created_us, not_before_us, state)"
            " VALUES ('ringcentral-reply', '{}', ?, ?, 'done')",
            rows[:done],
        )
        conn.executemany(
            "INSERT INTO outbox (kind, payload, created_us, not_before_us)"
            " VALUES ('ringcentral-reply', '{}', ?, ?)",
            rows,
        )
        conn.execute(
            "UPDATE outbox SET lease_until_us = ?, lease_owner = 'busy' WHERE id IN"
            " (SELECT id FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?)",
            (NOW + 10**8, LIMIT),
        )
        conn.execute("INSERT INTO outbox_worker (owner, heartbeat_us) VALUES ('busy', ?)", (NOW,))


def _claim_steps(path: Path) -> tuple[int, int]:
    """(rows a claim finds, SQLite VM steps it took)."""
    conn = sqlite3.connect(path)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    try:
        conn.set_progress_handler(count, 1)
        rows = conn.execute(CLAIM_OUTBOX, (NOW, NOW, "me", NOW - 3_000_000, LIMIT)).fetchall()
    finally:
        conn.close()
    return len(rows), steps


async def test_a_claim_costs_the_same_however_many_entries_are_pending(tmp_path: Path) -> None:
    costs = {}
    for pending in (200, 20_000):
        path = tmp_path / f"{pending}.db"
        await _new_file(path)
        with sqlite3.connect(path) as conn:
            _queue(conn, pending, done=pending)
        costs[pending] = _claim_steps(path)
    assert costs[200][0] == costs[20_000][0] == LIMIT
    # Sorting every due entry made the big backlog's claim about 100 times dearer.
    assert costs[20_000][1] < 1.5 * costs[200][1]


async def test_a_file_of_the_version_before_gets_the_due_order_index(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    before = len(MIGRATIONS) - 1
    for script in MIGRATIONS[:before]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {before}")
    _queue(conn, 100, done=10)
    conn.close()

    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        await store.outbox_heartbeat("me", NOW)
        taken = await store.claim_outbox(NOW, 10, 1_000, "me", 3_000_000)
        queued = await store.record_inbound(
            "twilio", "SM1", NOW, [], [OutboxItem("forward", "{}", not_before_us=0)]
        )
    finally:
        await store.close()
    # The first LIMIT pending entries are another live worker's: the next ten go, oldest due
    # first, and an entry queued after the upgrade is due before them all.
    assert [e.id for e in taken] == list(range(10 + LIMIT + 1, 10 + LIMIT + 11))
    conn = sqlite3.connect(path)
    try:
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        first_due = conn.execute(
            "SELECT id FROM outbox WHERE state = 'pending' ORDER BY not_before_us, id LIMIT 1"
        ).fetchone()[0]
    finally:
        conn.close()
    assert version == len(MIGRATIONS)
    assert "outbox_pending_due" in indexes and "outbox_due" not in indexes
    assert first_due == queued.outbox_ids[0]
