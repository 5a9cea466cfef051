"""The SQLite store's outbox claims: what one costs does not grow with the entries pending
behind what it takes - neither the free entries after the first it may take nor those waiting
behind an ordered queue's head - and a file made before the outbox had these indexes gets them
on opening.

A claim runs inside the group commit that STOP webhooks wait for, so its cost is theirs. The
cost is counted in SQLite's own virtual-machine steps (a progress handler), which are the same
on any machine, rather than timed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.base import OutboxItem
from gateway.store.sqlite import CLAIM_FREE, CLAIM_HEADS, MIGRATIONS, SQLiteStore

NOW = 10**15
LIMIT = 50


async def _new_file(path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()


def _queue(conn: sqlite3.Connection, pending: int, done: int, blocked: int = 0) -> None:
    """``pending`` due entries (the first ``LIMIT`` leased to a live worker, as in flight) and
    ``done`` delivered ones, as a burst's confirmations leave them; and ``blocked`` events of a
    subscriber that is down, waiting behind their queue's head, which is to be retried later."""
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
        conn.executemany(
            "INSERT INTO outbox (kind, payload, created_us, not_before_us, ordering_key)"
            " VALUES ('consent-event', '{}', ?, ?, 'subscriber:down')",
            [(NOW - blocked + i, NOW - blocked + i) for i in range(blocked)],
        )
        conn.execute(
            "UPDATE outbox SET not_before_us = ?, attempts = 9 WHERE id ="
            " (SELECT min(id) FROM outbox WHERE ordering_key = 'subscriber:down')",
            (NOW + 60_000_000,),
        )
        # Another queue, whose head is due: it is taken, and the entry behind it is not.
        conn.executemany(
            "INSERT INTO outbox (kind, payload, created_us, not_before_us, ordering_key)"
            " VALUES ('ringcentral-push', '{}', ?, ?, 'push')",
            [(NOW - 2, NOW - 2), (NOW - 1, NOW - 1)],
        )


def _claim_steps(path: Path) -> tuple[int, int]:
    """(rows a claim finds, SQLite VM steps it took): the store's two statements."""
    conn = sqlite3.connect(path)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    parameters = {"now": NOW, "owner": "me", "alive_after": NOW - 3_000_000, "limit": LIMIT}
    try:
        conn.set_progress_handler(count, 1)
        found = conn.execute(CLAIM_FREE, parameters).fetchall()
        found += conn.execute(CLAIM_HEADS, parameters).fetchall()
    finally:
        conn.close()
    return len(found), steps


async def test_a_claim_costs_the_same_however_many_entries_are_pending(tmp_path: Path) -> None:
    costs = {}
    for pending in (200, 20_000):
        path = tmp_path / f"{pending}.db"
        await _new_file(path)
        with sqlite3.connect(path) as conn:
            _queue(conn, pending, done=pending, blocked=pending)
        costs[pending] = _claim_steps(path)
    # LIMIT free entries, and the due head of the second queue.
    assert costs[200][0] == costs[20_000][0] == LIMIT + 1
    # Sorting every due entry, then reading past every blocked one, made the big backlog's
    # claim about 100 times dearer.
    assert costs[20_000][1] < 1.5 * costs[200][1]


async def test_a_file_of_an_earlier_version_gets_the_claims_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    before = 7  # the last version whose outbox was read through (state, not_before_us)
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
    assert {"outbox_pending_free", "outbox_pending_queue"} <= indexes
    assert not {"outbox_due", "outbox_pending_due", "outbox_queue"} & indexes
    assert first_due == queued.outbox_ids[0]
