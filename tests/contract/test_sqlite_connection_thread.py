"""The SQLite store's connection threads (``_ConnectionThread``): work runs on the connection's
own thread, in the order it was handed over; its answer or its error reaches the caller; a
caller that goes away leaves the thread serving; closing runs what was handed over before."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.store.sqlite import _ConnectionThread


@pytest.fixture
def thread(tmp_path: Path) -> _ConnectionThread:
    return _ConnectionThread(str(tmp_path / "t.db"), "test-sqlite", 5.0)


async def test_work_runs_on_its_own_thread_in_order(thread: _ConnectionThread) -> None:
    seen: list[tuple[int, str]] = []

    def work(n: int) -> Callable[[sqlite3.Connection], int]:
        def unit(conn: sqlite3.Connection) -> int:
            seen.append((n, threading.current_thread().name))
            return int(conn.execute("SELECT ?", (n,)).fetchone()[0])

        return unit

    answers = await asyncio.gather(*(thread.run(work(n)) for n in range(50)))
    assert answers == list(range(50))
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-sqlite"}
    await thread.close()


async def test_errors_reach_the_caller_and_the_thread_serves_on(thread: _ConnectionThread) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT * FROM no_such_table")

    def refused(conn: sqlite3.Connection) -> None:
        raise ValueError("not a store error")

    with pytest.raises(StoreUnavailable, match="no such table"):
        await thread.run(broken)
    with pytest.raises(ValueError, match="not a store error"):
        await thread.run(refused)
    assert await thread.run(lambda conn: conn.execute("SELECT 7").fetchone()[0]) == 7
    await thread.close()


async def test_a_transaction_left_open_by_a_failure_is_rolled_back(
    thread: _ConnectionThread,
) -> None:
    await thread.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        raise sqlite3.OperationalError("failed half-way")

    with pytest.raises(StoreUnavailable):
        await thread.run(half_done)
    assert await thread.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    await thread.close()


async def test_a_caller_that_goes_away_leaves_the_thread_serving(
    thread: _ConnectionThread,
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> str:
        started.set()
        release.wait(10)
        return "late"

    waiting = asyncio.ensure_future(thread.run(slow))
    ran: list[str] = []
    queued = asyncio.ensure_future(thread.run(lambda conn: ran.append("the queued one")))
    await asyncio.to_thread(started.wait, 10)
    waiting.cancel()
    queued.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await thread.run(lambda conn: "next") == "next"
    assert queued.cancelled()
    assert ran == []  # cancelled before it started: not run
    await thread.close()


async def test_close_runs_what_was_handed_over_then_refuses(
    thread: _ConnectionThread, tmp_path: Path
) -> None:
    await thread.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
    writes = [
        asyncio.ensure_future(
            thread.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
        )
        for n in range(20)
    ]
    await asyncio.sleep(0)  # every write is handed over before the close
    await thread.close()
    await asyncio.gather(*writes)
    with sqlite3.connect(tmp_path / "t.db") as check:
        assert check.execute("SELECT count(*) FROM t").fetchone()[0] == 20
    with pytest.raises(StoreUnavailable, match="closed"):
        await thread.run(lambda conn: None)
    await thread.close()  # twice is fine
    assert not any(t.name == "test-sqlite" for t in threading.enumerate())


async def test_closing_a_thread_never_used_is_quick(thread: _ConnectionThread) -> None:
    await thread.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await thread.run(lambda conn: None)


async def test_no_thread_to_be_had_is_unavailable_and_tried_again(
    thread: _ConnectionThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    with pytest.raises(StoreUnavailable, match="can't start new thread"):
        await thread.run(lambda conn: 1)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    assert await thread.run(lambda conn: 2) == 2
    await thread.close()


async def test_work_raising_stop_iteration_fails_its_caller_only(
    thread: _ConnectionThread,
) -> None:
    def odd(conn: sqlite3.Connection) -> None:
        raise StopIteration

    with pytest.raises(StoreUnavailable, match="StopIteration"):
        await thread.run(odd)
    assert await thread.run(lambda conn: "next") == "next"
    await thread.close()


async def test_a_store_dropped_without_closing_ends_its_thread(tmp_path: Path) -> None:
    dropped = _ConnectionThread(str(tmp_path / "t.db"), "test-sqlite-dropped", 5.0)
    await dropped.run(lambda conn: conn.execute("SELECT 1").fetchone())
    (worker,) = [t for t in threading.enumerate() if t.name == "test-sqlite-dropped"]
    del dropped
    gc.collect()
    await asyncio.to_thread(worker.join, 10)
    assert not worker.is_alive()
