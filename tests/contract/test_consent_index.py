"""The consent index in front of a real store: hits, invalidation, and the read/write race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from gateway.consent_index import ConsentIndex
from gateway.store.base import ConsentChange
from gateway.store.sqlite import SQLiteStore
from policy.consent import ConsentRecord, OptStatus, Source

F, T = "+16505550100", "+16505550111"


class GatedStore(SQLiteStore):
    """The real SQLite store, whose reads can be held after they have read (to force a race)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.hold = asyncio.Event()
        self.hold.set()
        self.read_done = asyncio.Event()

    async def get_records(self, to_key: str, from_keys: Sequence[str]) -> dict[str, ConsentRecord]:
        found = await super().get_records(to_key, from_keys)
        self.read_done.set()
        await self.hold.wait()
        return found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[GatedStore]:
    store = GatedStore(f"sqlite:///{tmp_path / 'index.db'}")
    await store.open()
    yield store
    await store.close()


def opt(status: OptStatus, from_key: str = F) -> ConsentChange:
    return ConsentChange(from_key, T, status, Source.API, actor="test")


async def test_second_lookup_is_a_hit_and_a_write_invalidates(store: GatedStore) -> None:
    index = ConsentIndex(store, size=100)
    index.trusted = True  # as when the change feed is followed
    assert await index.records(T, [F, "*"]) == [None, None]
    assert await index.records(T, [F, "*"]) == [None, None]
    assert (index.hits, index.misses) == (1, 1)
    await index.apply([opt(OptStatus.OPT_OUT)])
    [record, wildcard] = await index.records(T, [F, "*"])
    assert record is not None and record.status is OptStatus.OPT_OUT and wildcard is None


async def test_a_read_that_raced_a_write_does_not_cache_the_old_value(store: GatedStore) -> None:
    index = ConsentIndex(store, size=100)
    index.trusted = True  # as when the change feed is followed
    store.hold.clear()
    lookup = asyncio.create_task(index.records(T, [F]))
    await store.read_done.wait()  # the lookup has read "no record" and is held
    await index.apply([opt(OptStatus.OPT_OUT)])
    store.hold.set()
    assert await lookup == [None]  # it may answer what it read ...
    [record] = await index.records(T, [F])  # ... but must not have cached it
    assert record is not None and record.status is OptStatus.OPT_OUT


async def test_the_cache_is_bounded(store: GatedStore) -> None:
    index = ConsentIndex(store, size=10)
    index.trusted = True
    for n in range(50):
        await index.records(f"+1650555{n:04d}", [F, "*"])
    assert len(index) <= 10


async def test_the_least_recently_used_pairs_leave_first(store: GatedStore) -> None:
    index = ConsentIndex(store, size=4)  # two customers: (F, T) and (*, T) each
    index.trusted = True
    first, second, third = "+16505550201", "+16505550202", "+16505550203"
    await index.records(first, [F, "*"])
    await index.records(second, [F, "*"])
    await index.records(first, [F, "*"])  # a hit: now the most recently used
    await index.records(third, [F, "*"])  # room is made by dropping `second`
    assert (index.hits, index.misses, len(index)) == (1, 3, 4)
    await index.records(first, [F, "*"])
    assert (index.hits, index.misses) == (2, 3)
    await index.records(second, [F, "*"])
    assert (index.hits, index.misses, len(index)) == (2, 4, 4)


async def test_an_untrusted_cache_reads_the_store_every_time(store: GatedStore) -> None:
    index = ConsentIndex(store, size=100)
    index.trusted = True
    await index.records(T, [F])
    await store.apply([opt(OptStatus.OPT_OUT)])  # behind the index's back: another process
    index.trusted = False  # the change feed is lost
    [record] = await index.records(T, [F])
    assert record is not None and record.status is OptStatus.OPT_OUT
