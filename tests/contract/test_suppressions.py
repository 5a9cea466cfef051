"""Suppression lists on every backend: staged imports published atomically, refreshes that
release what a list no longer holds, and the change feed flushing caches when a list changes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from gateway.consent_csv import RejectedRow, parse_numbers
from gateway.consent_index import ConsentIndex
from gateway.store.base import ConsentStore
from gateway.store.sqlite import SQLiteStore
from gateway.suppressions import import_list
from policy.consent import Suppression, SuppressionKind
from tests.contract import test_store as contract

# The backends of the store contract suite (SQLite, PostgreSQL), under the same fixture names.
postgres_server = contract.postgres_server
store_url = contract.store_url
store = contract.store

T1, T2, T3 = "+16505550111", "+16505550112", "+16505550113"
INTERNAL, DNC = SuppressionKind.INTERNAL, SuppressionKind.DNC


async def publish(
    store: ConsentStore, name: str, members: list[str], kind: SuppressionKind = INTERNAL
) -> tuple[int, int, int]:
    generation = await store.stage_suppressions(name)
    await store.add_suppressions(name, generation, members)
    refresh = await store.publish_suppressions(name, generation, kind, 1_000, "why")
    return refresh.list.members, refresh.added, refresh.released


async def test_no_lists_suppress_nobody(store: ConsentStore) -> None:
    assert await store.suppressions_of(T1) == []
    assert await store.suppression_lists() == []
    assert await store.drop_suppression_list("none") == 0


async def test_a_published_list_suppresses_its_members(store: ConsentStore) -> None:
    assert await publish(store, "internal", [T1, T2, T1]) == (2, 2, 0)
    assert await store.suppressions_of(T1) == [Suppression("internal", INTERNAL, 1_000)]
    assert await store.suppressions_of(T3) == []
    [listed] = await store.suppression_lists()
    assert (listed.name, listed.kind, listed.members, listed.note) == (
        "internal",
        INTERNAL,
        2,
        "why",
    )
    assert await store.suppression_members("internal", after=None, limit=10) == [T1, T2]
    assert await store.suppression_members("internal", after=T1, limit=10) == [T2]


async def test_staged_members_are_invisible_until_published(store: ConsentStore) -> None:
    await publish(store, "dnc", [T1])
    generation = await store.stage_suppressions("dnc")
    await store.add_suppressions("dnc", generation, [T2, T3])
    assert [s.list_name for s in await store.suppressions_of(T1)] == ["dnc"]
    assert await store.suppressions_of(T2) == []
    assert await store.suppression_members("dnc", after=None, limit=10) == [T1]
    refresh = await store.publish_suppressions("dnc", generation, DNC, 2_000, None)
    assert (refresh.list.members, refresh.added, refresh.released) == (2, 2, 1)
    assert await store.suppressions_of(T1) == []
    assert await store.suppressions_of(T2) == [Suppression("dnc", DNC, 2_000)]


async def test_a_refresh_counts_what_stayed_came_and_went(store: ConsentStore) -> None:
    await publish(store, "l", [T1, T2])
    assert await publish(store, "l", [T2, T3]) == (2, 1, 1)
    assert await publish(store, "l", []) == (0, 0, 2)
    assert await store.suppressions_of(T2) == []


async def test_an_unfinished_import_is_forgotten_by_the_next(store: ConsentStore) -> None:
    await publish(store, "l", [T1])
    abandoned = await store.stage_suppressions("l")
    await store.add_suppressions("l", abandoned, [T2])
    assert await publish(store, "l", [T3]) == (1, 1, 1)
    assert await store.suppressions_of(T2) == []


async def test_lists_are_independent_and_dropped_alone(store: ConsentStore) -> None:
    await publish(store, "b-list", [T1])
    await publish(store, "a-list", [T1, T2], DNC)
    assert [s.list_name for s in await store.suppressions_of(T1)] == ["a-list", "b-list"]
    assert await store.drop_suppression_list("a-list") == 2
    assert [s.list_name for s in await store.suppressions_of(T1)] == ["b-list"]
    assert await store.suppressions_of(T2) == []
    assert [listed.name for listed in await store.suppression_lists()] == ["b-list"]


async def test_publishing_and_dropping_flush_every_cache(store: ConsentStore) -> None:
    head = (await store.changes_since(None)).cursor
    await publish(store, "l", [T1])
    batch = await store.changes_since(head)
    assert batch.flush_all
    await store.drop_suppression_list("l")
    assert (await store.changes_since(batch.cursor)).flush_all


async def test_import_streams_a_file_in_batches(store: ConsentStore, tmp_path: Path) -> None:
    lines = ["Phone,Name"] + [f"(650) 705-{n:04d},x" for n in range(120)] + ["nonsense,y"]
    outcome = await import_list(
        store,
        "big",
        INTERNAL,
        parse_numbers(iter(line + "\n" for line in lines), region="US"),
        listed_us=5,
        note=None,
    )
    assert outcome.refresh is not None and outcome.refresh.list.members == 120
    assert (outcome.rows, outcome.rejected) == (121, 1)
    assert [r.line for r in outcome.first_rejections] == [122]
    assert await store.suppressions_of("+16507050005") == [Suppression("big", INTERNAL, 5)]


def test_a_plain_list_needs_no_header() -> None:
    rows = list(parse_numbers(["+16505550111\n", "\n", "650 555 0112;x\n"], region="US"))
    assert rows[0] == T1 and isinstance(rows[1], RejectedRow)
    rows = list(parse_numbers(["Name,Where\n", "a,b\n"], region="US"))
    assert rows == [RejectedRow(1, "header names no number column")]


async def test_the_index_caches_suppressions_until_a_flush(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    sqlite = SQLiteStore(url)
    await sqlite.open()
    try:
        index = ConsentIndex(sqlite, size=10)
        index.trusted = True
        index.has_suppressions = False  # as the feed reports with no list
        await publish(sqlite, "l", [T1])
        assert await index.suppressions(T1) == ()  # not known yet: skipped
        index.has_suppressions = True
        index.clear()
        assert [s.list_name for s in await index.suppressions(T1)] == ["l"]
        await publish(sqlite, "l", [])
        assert [s.list_name for s in await index.suppressions(T1)] == ["l"]  # cached
        index.clear()
        assert await index.suppressions(T1) == ()
        index.trusted = False  # untrusted: always the store, whatever the flag says
        index.has_suppressions = False
        await publish(sqlite, "l", [T1])
        assert [s.list_name for s in await index.suppressions(T1)] == ["l"]
    finally:
        await sqlite.close()
    await asyncio.sleep(0)


async def test_random_refreshes_match_a_model(store: ConsentStore) -> None:
    """Publishes, abandoned imports and drops in a seeded random order: after each, every
    lookup and every listing matches a dictionary of what was last published."""
    rnd = random.Random(1234)
    customers = [f"+1650555{n:04d}" for n in range(200, 208)]
    model: dict[str, tuple[SuppressionKind, set[str]]] = {}
    for step in range(40):
        name = rnd.choice(["a", "b", "c"])
        action = rnd.random()
        if action < 0.6:
            members = set(rnd.sample(customers, rnd.randint(0, len(customers))))
            kind = rnd.choice(list(SuppressionKind))
            generation = await store.stage_suppressions(name)
            staged = sorted(members)
            for start in range(0, len(staged), 3):
                await store.add_suppressions(name, generation, staged[start : start + 3])
            refresh = await store.publish_suppressions(name, generation, kind, step, None)
            before = model.get(name, (kind, set()))[1]
            assert (refresh.added, refresh.released) == (
                len(members - before),
                len(before - members),
            )
            model[name] = (kind, members)
        elif action < 0.8:
            generation = await store.stage_suppressions(name)  # an import that never finishes
            await store.add_suppressions(name, generation, rnd.sample(customers, 3))
        else:
            released = await store.drop_suppression_list(name)
            assert released == len(model.pop(name, (None, set()))[1])
        for customer in customers:
            found = await store.suppressions_of(customer)
            expected = sorted(n for n, (_, members) in model.items() if customer in members)
            assert [s.list_name for s in found] == expected, (step, customer)
            assert all(s.kind is model[s.list_name][0] for s in found)
        lists = await store.suppression_lists()
        assert {listed.name: listed.members for listed in lists} == {
            n: len(members) for n, (_, members) in model.items()
        }
        for listed_name, (_, members) in model.items():
            page = await store.suppression_members(listed_name, after=None, limit=100)
            assert page == sorted(members)
