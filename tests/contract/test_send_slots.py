"""The frequency-cap counts of the ``ConsentStore`` contract (``take_send_slots`` /
``release_send_slots``), on every backend, including gateways racing on one store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.store import store_from_url
from gateway.store.base import ConsentStore, SendSlotRequest
from policy.consent import ConsentRecord, OptStatus, Source
from tests.contract.test_store import postgres_server, store, store_url  # noqa: F401

T1, T2 = "+13055550111", "+14055550112"
HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US
NOW = 1_800_000_000 * 1_000_000


def cap(to_key: str = T1, limit: int = 3, window_us: int = DAY_US) -> SendSlotRequest:
    return SendSlotRequest(to_key, limit, window_us)


async def test_a_cap_admits_its_count_then_refuses(store: ConsentStore) -> None:  # noqa: F811
    taken = [await store.take_send_slots([cap()], NOW + n) for n in range(5)]
    assert [slot is not None for [slot] in taken] == [True, True, True, False, False]
    assert len({slot for [slot] in taken if slot is not None}) == 3


async def test_recipients_are_counted_apart(store: ConsentStore) -> None:  # noqa: F811
    slots = await store.take_send_slots([cap(T1, 1), cap(T2, 1), cap(T1, 1)], NOW)
    assert [s is not None for s in slots] == [True, True, False]


async def test_the_window_slides(store: ConsentStore) -> None:  # noqa: F811
    for offset in (0, HOUR_US, 2 * HOUR_US):
        assert (await store.take_send_slots([cap()], NOW + offset))[0] is not None
    # The first send leaves the window exactly one window after it was counted.
    assert (await store.take_send_slots([cap()], NOW + DAY_US - 1))[0] is None
    assert (await store.take_send_slots([cap()], NOW + DAY_US))[0] is not None
    assert (await store.take_send_slots([cap()], NOW + DAY_US + HOUR_US - 1))[0] is None


async def test_a_released_slot_is_given_back(store: ConsentStore) -> None:  # noqa: F811
    slots = await store.take_send_slots([cap(limit=2), cap(limit=2)], NOW)
    assert None not in slots
    assert (await store.take_send_slots([cap(limit=2)], NOW))[0] is None
    await store.release_send_slots([s for s in slots[:1] if s is not None])
    await store.release_send_slots([])
    await store.release_send_slots([987654321])  # unknown: ignored
    assert (await store.take_send_slots([cap(limit=2)], NOW))[0] is not None


async def test_erasure_forgets_the_counts(store: ConsentStore) -> None:  # noqa: F811
    await store.take_send_slots([cap(limit=1), cap(T2, limit=1)], NOW)
    suppression = ConsentRecord("*", "hash:x", OptStatus.OPT_OUT, Source.RECIPIENT, 1, None)
    assert await store.erase(T1, suppression) == 1
    assert (await store.take_send_slots([cap(limit=1)], NOW))[0] is not None
    assert (await store.take_send_slots([cap(T2, limit=1)], NOW))[0] is None


async def test_racing_gateways_never_exceed_a_cap(store_url: Callable[[], str]) -> None:  # noqa: F811
    """Two store instances (two gateways, two connection pools) race for one recipient: the
    store admits exactly the cap, however the calls interleave."""
    first, second = store_from_url(store_url()), store_from_url(store_url())
    await first.open()
    await second.open()
    try:
        results = await asyncio.gather(
            *(
                (first if n % 2 else second).take_send_slots([cap(), cap(T2, limit=5)], NOW + n)
                for n in range(24)
            )
        )
        assert sum(1 for [slot, _] in results if slot is not None) == 3
        assert sum(1 for [_, slot] in results if slot is not None) == 5
    finally:
        await first.close()
        await second.close()
