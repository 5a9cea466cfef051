"""The ``ConsentStore`` contract. Every backend runs this same suite (see ``store_url``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.store import store_from_url
from gateway.store.base import (
    BlockedSend,
    ConsentChange,
    ConsentStore,
    OutboxItem,
    RecordQuery,
)
from policy.consent import OptStatus, Source

IN, OUT = OptStatus.OPT_IN, OptStatus.OPT_OUT
F1, F2, T1, T2 = "+16505550100", "+16505550101", "+16505550111", "+16505550112"

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    def url() -> str:
        return f"sqlite:///{tmp_path / 'contract.db'}"

    return url


@pytest.fixture
async def store(store_url: Callable[[], str]) -> AsyncIterator[ConsentStore]:
    opened = store_from_url(store_url())
    await opened.open()
    yield opened
    await opened.close()


def change(
    from_key: str = F1,
    to_key: str = T1,
    status: OptStatus = OUT,
    at: int | None = None,
    source: Source = Source.API,
) -> ConsentChange:
    return ConsentChange(from_key, to_key, status, source, actor="test", modified_us=at)


async def test_no_records_for_an_unknown_pair(store: ConsentStore) -> None:
    assert await store.get_records(T1, [F1, "*"]) == {}


async def test_live_writes_are_stamped_strictly_increasing(store: ConsentStore) -> None:
    results = await store.apply([change(to_key=f"+1650555{n:04d}") for n in range(50)])
    results += await store.apply([change(to_key=T2)])
    times = [r.record.modified_us for r in results]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(r.applied for r in results)


async def test_a_write_returns_the_previous_status_and_is_read_back(store: ConsentStore) -> None:
    [first] = await store.apply([change(status=OUT)])
    [second] = await store.apply([change(status=IN)])
    assert (first.previous, second.previous) == (None, OUT)
    record = (await store.get_records(T1, [F1]))[F1]
    assert (record.status, record.source, record.modified_us) == (
        IN,
        Source.API,
        second.record.modified_us,
    )


async def test_older_imported_record_never_replaces_a_newer_one(store: ConsentStore) -> None:
    [live] = await store.apply([change(status=OUT)])
    [old] = await store.apply([change(status=IN, at=live.record.modified_us - 1)])
    assert not old.applied
    assert (await store.get_records(T1, [F1]))[F1].status is OUT
    history = await store.history(to_key=T1, from_key=None, after_id=None, limit=10)
    assert [h.new_status for h in history] == [OUT]


@pytest.mark.parametrize(
    ("first", "second", "winner"), [(IN, OUT, OUT), (OUT, IN, OUT), (IN, IN, IN), (OUT, OUT, OUT)]
)
async def test_exact_time_tie_goes_to_opt_out(
    store: ConsentStore, first: OptStatus, second: OptStatus, winner: OptStatus
) -> None:
    await store.apply([change(status=first, at=1_000_000)])
    await store.apply([change(status=second, at=1_000_000)])
    assert (await store.get_records(T1, [F1]))[F1].status is winner


async def test_wildcard_and_pair_records_are_separate_keys(store: ConsentStore) -> None:
    await store.apply([change(from_key="*", status=OUT), change(from_key=F1, status=IN)])
    found = await store.get_records(T1, [F1, F2, "*"])
    assert {k: r.status for k, r in found.items()} == {F1: IN, "*": OUT}


async def test_history_lists_every_change_in_order(store: ConsentStore) -> None:
    for status in (OUT, IN, OUT):
        await store.apply([change(status=status)])
    await store.apply([change(to_key=T2)])
    history = await store.history(to_key=T1, from_key=F1, after_id=None, limit=10)
    assert [(h.old_status, h.new_status) for h in history] == [(None, OUT), (OUT, IN), (IN, OUT)]
    assert all(h.actor == "test" for h in history)
    after = await store.history(to_key=None, from_key=None, after_id=history[1].id, limit=10)
    assert [h.to_key for h in after] == [T1, T2]


async def test_list_records_pages_in_key_order_with_filters(store: ConsentStore) -> None:
    numbers = [f"+1650555{n:04d}" for n in range(25)]
    await store.apply(
        [change(to_key=n, status=OUT if i % 2 else IN) for i, n in enumerate(numbers)]
    )
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_records(RecordQuery(), after=after, limit=7)
        seen += [r.to_key for r in page]
        if len(page) < 7:
            break
        after = (page[-1].to_key, page[-1].from_key)
    assert seen == sorted(numbers)
    outs = await store.list_records(RecordQuery(statuses=(OUT,)), after=None, limit=100)
    assert len(outs) == 12 and all(r.status is OUT for r in outs)
    none = await store.list_records(RecordQuery(from_keys=(F2,)), after=None, limit=100)
    assert none == []
    one = await store.list_records(RecordQuery(to_key=numbers[3]), after=None, limit=100)
    assert [r.to_key for r in one] == [numbers[3]]


async def test_list_records_filters_by_time_range(store: ConsentStore) -> None:
    await store.apply([change(to_key=T1, at=100), change(to_key=T2, at=200)])
    query = RecordQuery(modified_from_us=150, modified_to_us=250)
    assert [r.to_key for r in await store.list_records(query, after=None, limit=10)] == [T2]


async def test_footer_state_is_cleared_when_the_pair_opts_in(store: ConsentStore) -> None:
    assert not await store.footer_sent(F1, T1)
    await store.mark_footer_sent(F1, T1)
    await store.mark_footer_sent(F1, T1)
    assert await store.footer_sent(F1, T1)
    await store.apply([change(status=OUT)])
    assert await store.footer_sent(F1, T1)
    await store.apply([change(status=IN)])
    assert not await store.footer_sent(F1, T1)


async def test_service_membership(store: ConsentStore) -> None:
    service = "MG" + "0" * 32
    await store.set_service_numbers(service, [F1, F2])
    assert await store.service_of(F1) == service
    assert await store.service_of(T1) is None


async def test_blocked_log_is_newest_first_and_pages(store: ConsentStore) -> None:
    for n in range(5):
        await store.log_blocked(
            BlockedSend(n, "twilio", F1, T1, "opt-out", f"req-{n}", 5, "ab" * 32)
        )
    first = await store.blocked_sends(before_id=None, limit=3)
    assert [e.request_id for _, e in first] == ["req-4", "req-3", "req-2"]
    rest = await store.blocked_sends(before_id=first[-1][0], limit=3)
    assert [e.request_id for _, e in rest] == ["req-1", "req-0"]


async def test_records_survive_reopening(store_url: Callable[[], str]) -> None:
    first = store_from_url(store_url())
    await first.open()
    await first.apply([change()])
    await first.close()
    second = store_from_url(store_url())
    await second.open()
    try:
        assert (await second.get_records(T1, [F1]))[F1].status is OUT
    finally:
        await second.close()


async def test_a_closed_store_raises_store_unavailable(store: ConsentStore) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get_records(T1, [F1])
    with pytest.raises(StoreUnavailable):
        await store.apply([change()])


async def test_concurrent_writers_keep_every_change(store: ConsentStore) -> None:
    numbers = [f"+1650556{n:04d}" for n in range(200)]
    await asyncio.gather(*(store.apply([change(to_key=n)]) for n in numbers))
    rows = await store.list_records(RecordQuery(), after=None, limit=1000)
    assert len(rows) == 200


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from gateway.store import store_from_url
    from gateway.store.base import ConsentChange
    from policy.consent import OptStatus, Source

    async def main():
        store = store_from_url(sys.argv[1])
        await store.open()
        n = 0
        while True:
            to = f"+1650557{n:04d}"
            await store.apply([ConsentChange("*", to, OptStatus.OPT_OUT, Source.API, "crash")])
            print(to, flush=True)
            n += 1

    asyncio.run(main())
    """
)


def test_acknowledged_writes_survive_kill_9(store_url: Callable[[], str]) -> None:
    url = store_url()
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    acknowledged: list[str] = []
    try:
        assert writer.stdout is not None
        while len(acknowledged) < 60:
            line = writer.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        if writer.stdout is not None:
            writer.stdout.close()
    assert len(acknowledged) == 60

    async def check() -> set[str]:
        store = store_from_url(url)
        await store.open()
        try:
            rows = await store.list_records(RecordQuery(), after=None, limit=10_000)
        finally:
            await store.close()
        return {r.to_key for r in rows}

    assert set(acknowledged) <= asyncio.run(check())


async def test_inbound_message_is_recorded_once_with_its_changes_and_work(
    store: ConsentStore,
) -> None:
    work = [OutboxItem("confirmation", '{"n": 1}', not_before_us=0, deadline_us=10**18)]
    first = await store.record_inbound("twilio", "SM1", 5, [change()], work)
    again = await store.record_inbound("twilio", "SM1", 6, [change(status=IN)], work)
    assert not first.duplicate and [a.applied for a in first.applied] == [True]
    assert again.duplicate and again.applied == []
    assert (await store.get_records(T1, [F1]))[F1].status is OUT
    history = await store.history(to_key=T1, from_key=None, after_id=None, limit=10)
    assert len(history) == 1
    due = await store.due_outbox(now_us=10, limit=10)
    assert [(e.kind, e.payload) for e in due] == [("confirmation", '{"n": 1}')]
    other = await store.record_inbound("ringcentral", "SM1", 7, [], [])
    assert not other.duplicate


async def test_outbox_retry_done_and_give_up(store: ConsentStore) -> None:
    items = [OutboxItem(kind, "{}", not_before_us=0) for kind in ("a", "b", "c")]
    await store.record_inbound("twilio", "SM2", 100, [], items)
    a, b, c = await store.due_outbox(now_us=1, limit=10)
    assert await store.outbox_stats(now_us=150) == (3, 50)
    await store.outbox_done(a.id)
    await store.outbox_retry(b.id, not_before_us=500, error="timeout")
    await store.outbox_give_up(c.id, "window passed")
    assert await store.due_outbox(now_us=499, limit=10) == []
    [retried] = await store.due_outbox(now_us=500, limit=10)
    assert (retried.id, retried.attempts) == (b.id, 1)
    assert (await store.outbox_stats(now_us=600))[0] == 1


async def test_claimed_outbox_entries_are_not_handed_out_twice(store: ConsentStore) -> None:
    items = [OutboxItem("a", "{}", not_before_us=0) for _ in range(5)]
    await store.record_inbound("twilio", "SM3", 100, [], items)
    await store.outbox_heartbeat("w1", 1_000)
    await store.outbox_heartbeat("w2", 1_000)
    first, second = await asyncio.gather(
        store.claim_outbox(1_000, 3, 500, "w1", 300),
        store.claim_outbox(1_000, 3, 500, "w2", 300),
    )
    assert len(first) + len(second) == 5
    assert not {e.id for e in first} & {e.id for e in second}
    # Both owners alive: nothing is free, not even for the same owner again.
    await store.outbox_heartbeat("w1", 1_200)
    await store.outbox_heartbeat("w2", 1_200)
    assert await store.claim_outbox(1_250, 10, 500, "w1", 300) == []
    # w2 stops beating (it died): its entries pass to w1 before their lease runs out.
    await store.outbox_heartbeat("w1", 1_400)
    taken = await store.claim_outbox(1_450, 10, 500, "w1", 200)
    assert {e.id for e in taken} == {e.id for e in second}
    # A lease that ran out is handed out again to anyone.
    assert len(await store.claim_outbox(2_000, 10, 500, "w3", 200)) == 5
