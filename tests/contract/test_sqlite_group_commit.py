"""The SQLite store's group commit: units that arrive together share one transaction, and each
caller still sees what it would have seen alone (see ``_GroupCommit``). The outbox's writes are
units too, so a failing unit must not take a confirmation's bookkeeping down with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.store.base import ConsentChange, OutboxItem
from gateway.store.sqlite import SQLiteStore
from policy.consent import OptStatus, Source

BUSINESS = "+16505550100"


def _stop(customer: str) -> ConsentChange:
    return ConsentChange(BUSINESS, customer, OptStatus.OPT_OUT, Source.RECIPIENT, actor="test")


def _reply(customer: str) -> OutboxItem:
    return OutboxItem("ringcentral-reply", f'{{"to": "{customer}"}}', 0, 10**18)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'consent.db'}")
    await opened.open()
    yield opened
    await opened.close()


async def _queued_reply(store: SQLiteStore, customer: str) -> int:
    outcome = await store.record_inbound("ringcentral", f"m-{customer}", 1, [], [_reply(customer)])
    return outcome.outbox_ids[0]


async def test_a_unit_refused_by_the_database_fails_alone(
    store: SQLiteStore, tmp_path: Path
) -> None:
    entry = await _queued_reply(store, "+16505550111")

    def refused(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE outbox SET no_such_column = 1")  # an older schema, say

    # Gathered: all three are queued before the first batch starts, so they share it.
    outcomes = await asyncio.gather(
        store._commits.run(refused),
        store.outbox_begin(entry),
        store.apply([_stop("+16505550112")]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], StoreUnavailable)
    assert outcomes[1] is None
    assert not isinstance(outcomes[2], BaseException)
    assert _read_in_flight(tmp_path, entry) == 1
    records = await store.get_records("+16505550112", [BUSINESS])
    assert records[BUSINESS].status is OptStatus.OPT_OUT


async def test_bad_text_beside_the_outbox_fails_alone(store: SQLiteStore, tmp_path: Path) -> None:
    entry = await _queued_reply(store, "+16505550121")
    bad = ConsentChange(
        BUSINESS, "+16505550122", OptStatus.OPT_OUT, Source.API, actor="x", note="\udc80"
    )
    outcomes = await asyncio.gather(
        store.apply([bad]), store.outbox_begin(entry), return_exceptions=True
    )
    assert isinstance(outcomes[0], StoreUnavailable)
    assert outcomes[1] is None
    assert _read_in_flight(tmp_path, entry) == 1


async def test_a_failure_that_ends_the_transaction_fails_every_unit(
    store: SQLiteStore, tmp_path: Path
) -> None:
    entry = await _queued_reply(store, "+16505550131")

    def ends_it(conn: sqlite3.Connection) -> None:
        # What an I/O error or a full disk can do: the database rolls back on its own.
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    outcomes = await asyncio.gather(
        store.apply([_stop("+16505550132")]),
        store._commits.run(ends_it),
        store.outbox_begin(entry),
        return_exceptions=True,
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert _read_in_flight(tmp_path, entry) == 0  # nothing of the batch was committed
    assert await store.get_records("+16505550132", [BUSINESS]) == {}
    # The store goes on: the next batch commits.
    await store.outbox_begin(entry)
    assert _read_in_flight(tmp_path, entry) == 1


def _read_in_flight(tmp_path: Path, entry_id: int) -> int:
    conn = sqlite3.connect(tmp_path / "consent.db")
    row = conn.execute("SELECT in_flight FROM outbox WHERE id = ?", (entry_id,)).fetchone()
    return int(row[0])
