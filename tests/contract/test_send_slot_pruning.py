"""Expired frequency-cap counts are pruned (``prune_send_slots``), on every backend: oldest
first, a bounded batch per call, never a count some cap window still holds; and the retention
task of a running gateway prunes them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.clock import Clock
from gateway.config import Settings
from gateway.erasure import prune_send_slots
from gateway.store import store_from_url
from gateway.store.base import ConsentStore
from policy.frequency_caps import HOUR_US, Cap, FrequencyCaps
from tests.contract.test_send_slots import DAY_US, NOW, T1, T2, cap
from tests.contract.test_store import postgres_server, store, store_url  # noqa: F401


async def count_within(
    store: ConsentStore,  # noqa: F811
    to_key: str,
    limit: int,
    now_us: int,
    window_us: int = DAY_US,
) -> int:
    """How many sends to ``to_key`` the store counts in the ``window_us`` before ``now_us``
    (probed by taking slots up to ``limit``, then giving them back)."""
    taken = await store.take_send_slots([cap(to_key, limit, window_us)] * limit, now_us)
    await store.release_send_slots([s for s in taken if s is not None])
    return taken.count(None)


async def test_only_slots_at_or_before_the_cut_go(store: ConsentStore) -> None:  # noqa: F811
    for offset in range(6):
        await store.take_send_slots([cap(T1, 100), cap(T2, 100)], NOW + offset * HOUR_US)
    # The cut at NOW + 2 h: the slots at 0, 1 and 2 h of both recipients go.
    assert await store.prune_send_slots(NOW + 2 * HOUR_US, 100) == 6
    assert await store.prune_send_slots(NOW + 2 * HOUR_US, 100) == 0
    later = NOW + 5 * HOUR_US
    assert await count_within(store, T1, 10, later) == 3
    assert await count_within(store, T2, 10, later) == 3


async def test_a_call_prunes_at_most_its_batch_oldest_first(store: ConsentStore) -> None:  # noqa: F811
    for offset in range(5):
        await store.take_send_slots([cap(T1, 100)], NOW + offset)
    assert await store.prune_send_slots(NOW + 10, 2) == 2
    # The two oldest went: three remain, the newest of them at NOW + 4.
    assert await store.prune_send_slots(NOW + 2, 10) == 1
    assert await count_within(store, T1, 10, NOW + 4) == 2


async def test_pruning_in_batches_removes_everything_expired(store: ConsentStore) -> None:  # noqa: F811
    for offset in range(11):
        await store.take_send_slots([cap(T1, 100), cap(T2, 100)], NOW + offset)
    assert await prune_send_slots(store, NOW + 9, batch=3) == 20
    assert await prune_send_slots(store, NOW + 9, batch=3) == 0
    assert await count_within(store, T1, 5, NOW + 10) == 1


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(0, 3 * DAY_US), min_size=1, max_size=12),
    window_hours=st.sampled_from([1, 24, 48]),
)
async def test_pruning_past_the_longest_window_never_changes_a_decision(
    store: ConsentStore,  # noqa: F811
    offsets: list[int],
    window_hours: int,
) -> None:
    await store.prune_send_slots(2**62, 10_000)  # examples share the store: start empty
    window = window_hours * HOUR_US
    for offset in sorted(offsets):
        await store.take_send_slots([cap(T1, 100, window)], NOW + offset)
    now = NOW + 3 * DAY_US + 1
    # A cap decides over its own window: the longest window in use is the one pruned past.
    before = await count_within(store, T1, 13, now, window)
    await prune_send_slots(store, now - window, batch=4)
    assert await count_within(store, T1, 13, now, window) == before
    # Nothing older than the window is left.
    assert await store.prune_send_slots(now - window, 10_000) == 0


def test_the_longest_window_is_of_every_configured_cap() -> None:
    assert FrequencyCaps(enabled=True).longest_window_us() == DAY_US
    week = Cap(5, 7 * DAY_US)
    assert FrequencyCaps(True, default=week).longest_window_us() == 7 * DAY_US
    assert FrequencyCaps(True, states={}).longest_window_us() == 0
    assert FrequencyCaps(True, None, {"FL": Cap(1, HOUR_US)}).longest_window_us() == HOUR_US


def slot_times(path: Path) -> list[int]:
    """The ``at_us`` of every counted send in a SQLite store file, read beside the gateway."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return sorted(row[0] for row in conn.execute("SELECT at_us FROM send_slot"))


async def seed(path: Path, *times_us: int) -> None:
    seeded = store_from_url(f"sqlite:///{path}")
    await seeded.open()
    try:
        for at_us in times_us:
            # A window long enough that taking one does not forget the others on the way.
            await seeded.take_send_slots([cap(T1, 100, 1000 * DAY_US)], at_us)
    finally:
        await seeded.close()


async def test_the_retention_task_prunes_expired_counts_at_start_up(
    tmp_path: Path,
    settings_for: Callable[..., Settings],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    path = tmp_path / "slots.db"
    now_us = time.time_ns() // 1000
    await seed(path, *(now_us - hours_ago * HOUR_US for hours_ago in (50, 30, 23, 1)))
    # Caps on with a 48 h default: the longest window is 48 h (Florida and the others: 24 h).
    caps = FrequencyCaps(enabled=True, default=Cap(10, 48 * HOUR_US))
    settings = dataclasses.replace(settings_for(), store=f"sqlite:///{path}", frequency_caps=caps)
    await aiohttp_client(create_app(settings, clock=Clock()))
    expected = [now_us - hours_ago * HOUR_US for hours_ago in (30, 23, 1)]
    for _ in range(400):  # the first pass runs right after start-up
        if slot_times(path) == expected:
            break
        await asyncio.sleep(0.05)
    assert slot_times(path) == expected


async def test_caps_off_leave_the_counts_alone(
    tmp_path: Path,
    settings_for: Callable[..., Settings],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    path = tmp_path / "slots.db"
    await seed(path, NOW - 10 * DAY_US)
    settings = dataclasses.replace(
        settings_for(), store=f"sqlite:///{path}", history_retention_days=1
    )
    await aiohttp_client(create_app(settings))
    await asyncio.sleep(0.3)
    assert slot_times(path) == [NOW - 10 * DAY_US]


async def test_send_slot_times_reads_the_window_without_counting(store: ConsentStore) -> None:  # noqa: F811
    for offset in (0, HOUR_US, 2 * HOUR_US):
        await store.take_send_slots([cap(T1, 100)], NOW + offset)
    await store.take_send_slots([cap(T2, 100)], NOW)
    assert await store.send_slot_times(T1, NOW) == [NOW + HOUR_US, NOW + 2 * HOUR_US]
    assert await store.send_slot_times(T1, NOW - 1) == [NOW, NOW + HOUR_US, NOW + 2 * HOUR_US]
    assert await store.send_slot_times("+19995550000", 0) == []
    # Reading took nothing: the cap of 4 still admits exactly one more.
    assert [s is not None for s in await store.take_send_slots([cap(T1, 4)] * 2, NOW + 3)] == [
        True,
        False,
    ]
