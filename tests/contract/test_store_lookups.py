"""Several customers' records in one read (a send's number and its erasure alias), on every
backend, and through the consent index."""

from __future__ import annotations

from gateway.consent_index import ConsentIndex
from gateway.store.base import ConsentChange, ConsentStore
from policy.consent import OptStatus, Source
from tests.contract.test_store import postgres_server, store, store_url  # noqa: F401

F1, F2 = "+16505550100", "+16505550101"
T1, T2, T3 = "+16505550111", "+16505550112", "+16505550113"


def change(from_key: str, to_key: str, status: OptStatus) -> ConsentChange:
    return ConsentChange(from_key, to_key, status, Source.API, actor="test")


async def test_several_lookups_in_one_read_are_each_what_get_records_says(
    store: ConsentStore,  # noqa: F811
) -> None:
    await store.apply(
        [
            change(F1, T1, OptStatus.OPT_OUT),
            change("*", T1, OptStatus.OPT_IN),
            change(F2, T1, OptStatus.OPT_IN),
            change("*", T2, OptStatus.OPT_OUT),
        ]
    )
    lookups = [(T1, [F1, "*"]), (T2, ["*"]), (T3, [F1]), (T1, [F2]), (T2, [])]
    many = await store.get_records_many(lookups)
    assert many == [await store.get_records(to_key, keys) for to_key, keys in lookups]
    assert [sorted(found) for found in many] == [["*", F1], ["*"], [], [F2], []]
    assert await store.get_records_many([]) == []


async def test_the_index_reads_what_it_lacks_once_then_serves_both_from_cache(
    store: ConsentStore,  # noqa: F811
) -> None:
    await store.apply([change(F1, T1, OptStatus.OPT_OUT), change("*", T2, OptStatus.OPT_OUT)])
    index = ConsentIndex(store, size=100)
    index.trusted = True
    lookups = [(T1, [F1, "*"]), (T2, ["*"])]
    first = await index.records_many(lookups)
    assert [[r.status if r else None for r in found] for found in first] == [
        [OptStatus.OPT_OUT, None],
        [OptStatus.OPT_OUT],
    ]
    assert (index.hits, index.misses) == (0, 1)
    assert await index.records_many(lookups) == first
    assert (index.hits, index.misses) == (1, 1)
    await index.apply([change(F1, T1, OptStatus.OPT_IN)])
    [[pair, _], [wildcard]] = await index.records_many(lookups)
    assert pair is not None and pair.status is OptStatus.OPT_IN
    assert wildcard is not None and wildcard.status is OptStatus.OPT_OUT
    assert index.misses == 2


async def test_the_cache_keeps_the_most_recently_used_pairs_within_its_size(
    store: ConsentStore,  # noqa: F811
) -> None:
    index = ConsentIndex(store, size=3)
    index.trusted = True
    customers = [f"+1650555{n:04d}" for n in range(2000, 2004)]
    for customer in customers[:3]:
        await index.records(customer, [F1])
    await index.records(customers[0], [F1])  # now the most recently used
    await index.records(customers[3], [F1])  # evicts customers[1], the least recently used
    assert len(index) == 3
    misses = index.misses
    await index.records_many([(customers[0], [F1]), (customers[2], [F1]), (customers[3], [F1])])
    assert index.misses == misses
    await index.records(customers[1], [F1])
    assert index.misses == misses + 1 and len(index) == 3
