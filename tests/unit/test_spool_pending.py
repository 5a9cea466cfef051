"""``Spool.pending``: what the outbox asks on every round, answered without a ``stat`` each time.

An append by this process is pending at once; another process's append (a second ``Spool`` on
the same file stands for it) within ``CHECK_SECONDS``; a drain empties both views.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.spool import Spool, SpooledEvent
from gateway.store.base import ConsentChange
from policy.consent import OptStatus, Source


def _event(message_id: str) -> SpooledEvent:
    change = ConsentChange(
        "+16505550100",
        "+16505550111",
        OptStatus.OPT_OUT,
        Source.RECIPIENT,
        actor="recipient:twilio",
        modified_us=1,
    )
    return SpooledEvent("twilio", message_id, 1, (change,), ())


class _Recorder:
    """A store that takes every replayed event (the spool's only use of a store)."""

    def __init__(self) -> None:
        self.replayed: list[str] = []

    async def record_inbound(self, provider: str, message_id: str, *args: Any) -> None:
        self.replayed.append(message_id)


def test_own_append_is_pending_at_once_and_a_drain_clears_it(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool.jsonl"))
    assert not spool.pending()
    asyncio.run(spool.append(_event("m1")))
    assert spool.pending()  # within CHECK_SECONDS of the look above: known without one
    store = _Recorder()
    assert asyncio.run(spool.drain(store)) == 1
    assert store.replayed == ["m1"]
    assert not spool.pending()
    assert (tmp_path / "spool.jsonl").stat().st_size == 0


def test_another_process_append_is_seen_within_the_check_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.jsonl")
    outbox_view, other_worker = Spool(path), Spool(path)
    assert not outbox_view.pending()
    asyncio.run(other_worker.append(_event("m2")))
    deadline = time.monotonic() + Spool.CHECK_SECONDS + 1.0
    while not outbox_view.pending():
        assert time.monotonic() < deadline, "another worker's spooled event was never seen"
        time.sleep(Spool.CHECK_SECONDS / 4)
    # A drain by the first empties the file. The worker that appended still counts its own
    # append as pending until it drains itself: a drain of an empty file, which replays nothing.
    assert asyncio.run(outbox_view.drain(_Recorder())) == 1
    assert not outbox_view.pending()
    time.sleep(Spool.CHECK_SECONDS)
    assert other_worker.pending()
    assert asyncio.run(other_worker.drain(_Recorder())) == 0
    assert not other_worker.pending()


def test_the_file_is_looked_at_once_per_interval_not_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(str(tmp_path / "spool.jsonl"))
    looks: list[Path] = []
    real_stat = Path.stat

    def counted(self: Path, **kwargs: Any) -> os.stat_result:
        if self == spool.path:
            looks.append(self)
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", counted)
    started = time.monotonic()
    for _ in range(1000):  # the outbox asks on every round of a burst
        assert not spool.pending()
    rounds_of_the_interval = (time.monotonic() - started) / Spool.CHECK_SECONDS
    assert 1 <= len(looks) <= rounds_of_the_interval + 2


def test_a_failed_drain_leaves_the_event_pending(tmp_path: Path) -> None:
    from gateway.errors import StoreUnavailable

    class _Down:
        async def record_inbound(self, *args: Any) -> None:
            raise StoreUnavailable("still down")

    spool = Spool(str(tmp_path / "spool.jsonl"))
    asyncio.run(spool.append(_event("m3")))
    try:
        asyncio.run(spool.drain(_Down()))
    except StoreUnavailable:
        pass
    else:
        raise AssertionError("a drain into a store that is down must raise")
    assert spool.pending()
    assert (tmp_path / "spool.jsonl").stat().st_size > 0
