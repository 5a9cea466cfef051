"""The ``ConsentStore`` contract. Every backend runs this same suite (see ``store_url``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from gateway.errors import ConfigError, StoreUnavailable
from gateway.store import store_from_url
from gateway.store.base import (
    DAY_US,
    AppliedChange,
    BlockedQuery,
    BlockedSend,
    ConsentChange,
    ConsentStore,
    ConsoleSession,
    ImportCounts,
    OutboxItem,
    RecordQuery,
)
from gateway.store.postgres import MIGRATIONS as PG_MIGRATIONS
from gateway.store.postgres import PostgresStore
from gateway.store.postgres import parse_url as parse_postgres_url
from policy.consent import ConsentRecord, OptStatus, Source
from tests.support import postgres
from tests.support.servers import free_port

IN, OUT = OptStatus.OPT_IN, OptStatus.OPT_OUT
F1, F2, T1, T2 = "+16505550100", "+16505550101", "+16505550111", "+16505550112"

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session (see ``tests.support.postgres``): never skipped in
    CI; elsewhere skipped only when no server answers and no binaries can start one."""
    with postgres.server_or_skip() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """The URL of an empty store of each backend (the same URL on every call within a test):
    an SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        path = tmp_path / "contract.db"
        yield lambda: f"sqlite:///{path}"
        return
    with postgres.schema(request.getfixturevalue("postgres_server")) as url:
        yield lambda: url


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


# --- The rest of the protocol, on every backend ---------------------------------------------


async def test_a_large_batch_applies_exactly_as_one_change_at_a_time(store: ConsentStore) -> None:
    """A batch big enough for a backend's bulk path (COPY on PostgreSQL) keeps the row-by-row
    semantics: repeated pairs, older records, exact ties, history in order, footer state."""
    numbers = [f"+1650558{n:04d}" for n in range(400)]
    await store.apply([change(to_key=n, status=OUT, at=1_000) for n in numbers[:200]])
    for n in numbers[:10] + numbers[300:310]:
        await store.mark_footer_sent(F1, n)
    batch: list[ConsentChange] = []
    for i, n in enumerate(numbers):
        batch.append(change(to_key=n, status=IN, at=1_000 + i % 3 - 1))  # older, tie, newer
        batch.append(change(to_key=n, status=OUT if i % 2 else IN, at=1_000 + i % 5))
        if i % 7 == 0:
            batch.append(change(to_key=n, status=OUT, at=1_000 + i % 5))  # a tie in the batch
    model: dict[str, tuple[OptStatus, int]] = {n: (OUT, 1_000) for n in numbers[:200]}
    history_model: dict[str, list[tuple[OptStatus | None, OptStatus]]] = {
        n: [(None, OUT)] for n in numbers[:200]
    }
    expected: list[tuple[bool, OptStatus | None]] = []
    opted_in: set[str] = set()
    for c in batch:  # the rule, one change at a time: newer wins, an exact tie goes to OptOut
        assert c.modified_us is not None
        current = model.get(c.to_key)
        wins = (
            current is None
            or c.modified_us > current[1]
            or (c.modified_us == current[1] and c.status is OUT and current[0] is IN)
        )
        previous = current[0] if current else None
        expected.append((wins, previous if wins else None))
        if wins:
            history_model.setdefault(c.to_key, []).append((previous, c.status))
            model[c.to_key] = (c.status, c.modified_us)
            if c.status is IN:
                opted_in.add(c.to_key)

    results = await store.apply(batch)

    assert [(r.applied, r.previous) for r in results] == expected
    assert sum(r.applied for r in results) >= 500
    rows = await store.list_records(RecordQuery(), after=None, limit=10_000)
    assert {r.to_key: (r.status, r.modified_us) for r in rows} == model
    history: dict[str, list[tuple[OptStatus | None, OptStatus | None]]] = {}
    for h in await store.history(to_key=None, from_key=None, after_id=None, limit=10_000):
        history.setdefault(h.to_key, []).append((h.old_status, h.new_status))
    assert history == history_model
    for n in numbers[:10] + numbers[300:310]:
        assert await store.footer_sent(F1, n) is (n not in opted_in)
    # Once more on top (a second bulk write reuses whatever the first one set up).
    again = await store.apply([change(to_key=n, status=OUT) for n in numbers] * 2)
    assert [r.applied for r in again] == [True] * len(again)
    assert [r.previous for r in again[len(numbers) :]] == [OUT] * len(numbers)


async def test_follow_up_work_is_queued_with_the_changes_that_applied(store: ConsentStore) -> None:
    seen: list[list[str]] = []

    def follow_up(applied: Sequence[AppliedChange]) -> list[OutboxItem]:
        seen.append([a.record.to_key for a in applied])
        return [OutboxItem("event", a.record.to_key, not_before_us=0) for a in applied]

    [live] = await store.apply([change(to_key=T1)])
    await store.apply(
        [change(to_key=T1, status=IN, at=live.record.modified_us - 1), change(to_key=T2)],
        follow_up,
    )
    assert seen == [[T2]]
    assert [e.payload for e in await store.due_outbox(now_us=10**18, limit=10)] == [T2]


async def test_an_import_batch_writes_what_apply_writes_and_counts_it(
    store: ConsentStore,
) -> None:
    """``import_changes`` is ``apply`` answered by counts, whichever way a backend decides the
    batch (PostgreSQL writes a batch of new pairs column by column): records, history in order,
    footer state, the change feed and the follow-up work."""
    numbers = [f"+1650557{n:04d}" for n in range(600)]
    for n in numbers[:6]:
        await store.mark_footer_sent(F1, n)
    seen: list[list[tuple[ConsentRecord, OptStatus | None]]] = []

    def follow_up(applied: Sequence[AppliedChange]) -> list[OutboxItem]:
        seen.append([(a.record, a.previous) for a in applied if a.applied])
        return [OutboxItem("event", str(len(applied)), not_before_us=0)]

    head = (await store.changes_since(None)).cursor
    fresh = [
        ConsentChange(F1, n, IN if i % 2 == 0 else OUT, Source.API, "importer", f"n{i}", 1_000 + i)
        for i, n in enumerate(numbers)
    ]
    assert await store.import_changes(fresh, follow_up) == ImportCounts(600, 0)
    records = [
        ConsentRecord(c.from_key, c.to_key, c.status, c.source, 1_000 + i, c.note)
        for i, c in enumerate(fresh)
    ]
    assert seen == [[(r, None) for r in records]]
    assert await store.list_records(RecordQuery(), after=None, limit=1_000) == records
    history = await store.history(to_key=None, from_key=None, after_id=None, limit=1_000)
    assert [(h.to_key, h.old_status, h.new_status, h.actor, h.note) for h in history] == [
        (c.to_key, None, c.status, "importer", c.note) for c in fresh
    ]
    assert [await store.footer_sent(F1, n) for n in numbers[:6]] == [False, True] * 3
    assert (await store.changes_since(head)).flush_all
    assert [e.payload for e in await store.due_outbox(now_us=10**18, limit=10)] == ["600"]

    # On top, newer, older and tied records, and new pairs; then the same with a pair twice
    # (which PostgreSQL decides change by change).
    model = {c.to_key: (c.status, c.modified_us) for c in fresh}
    more = [f"+1650559{n:04d}" for n in range(50)]
    batches = [
        [change(to_key=n, status=OUT, at=1_000 + i - i % 3) for i, n in enumerate(numbers)]
        + [change(to_key=n, status=IN, at=5) for n in more],
        [change(to_key=n, status=IN, at=2_000 + i % 2) for i, n in enumerate(numbers)]
        + [change(to_key=numbers[1], status=OUT, at=9_000)] * 2,
    ]
    history_length = 600
    for batch in batches:
        seen.clear()
        expected: list[tuple[str, OptStatus | None]] = []
        for c in batch:  # the rule, one change at a time
            assert c.modified_us is not None
            status, at = model.get(c.to_key, (None, -1))
            if c.modified_us > at or (c.modified_us == at and c.status is OUT and status is IN):
                model[c.to_key] = (c.status, c.modified_us)
                expected.append((c.to_key, status))
        counts = await store.import_changes(batch, follow_up)
        assert counts == ImportCounts(len(expected), len(batch) - len(expected))
        assert [(r.to_key, previous) for r, previous in seen[0]] == expected
        rows = await store.list_records(RecordQuery(), after=None, limit=1_000)
        assert {r.to_key: (r.status, r.modified_us) for r in rows} == model
        history_length += len(expected)
        history = await store.history(to_key=None, from_key=None, after_id=None, limit=2_000)
        assert len(history) == history_length
        assert [(h.to_key, h.old_status) for h in history[-len(expected) :]] == expected
    assert history_length == 600 + 100 + 50 + 600 + 1


async def test_deleting_records_keeps_each_removal_in_history(store: ConsentStore) -> None:
    first, _ = await store.apply([change(from_key=F1), change(from_key=F2, status=IN)])
    removed = await store.delete_records([(F1, T1), (F1, T2), (F1, T1)], "admin", "asked")
    assert [(r.from_key, r.to_key, r.status) for r in removed] == [(F1, T1, OUT)]
    assert set(await store.get_records(T1, [F1, F2])) == {F2}
    last = (await store.history(to_key=T1, from_key=F1, after_id=None, limit=10))[-1]
    assert (last.old_status, last.new_status, last.actor, last.note) == (
        OUT,
        None,
        "admin",
        "asked",
    )
    assert last.source is Source.API and last.modified_us > first.record.modified_us
    [after] = await store.apply([change()])
    assert after.record.modified_us > last.modified_us and after.previous is None


async def test_erasure_removes_a_customer_and_keeps_the_suppression(store: ConsentStore) -> None:
    await store.apply([change(from_key=F1, status=IN), change(from_key="*"), change(to_key=T2)])
    await store.apply([change(from_key=F1, status=OUT)])
    for to_key in (T1, T2):
        await store.log_blocked(BlockedSend(1, "twilio", F1, to_key, "opt-out", "r", 1, "00"))
    await store.mark_footer_sent(F2, T1)
    suppression = ConsentRecord("*", "hash:abc", OUT, Source.RECIPIENT, 42, "erased")
    removed = await store.erase(T1, suppression)
    assert removed == 2 + 3 + 1 + 1  # records, history, blocked sends, footer state
    assert await store.get_records(T1, [F1, "*"]) == {}
    assert await store.history(to_key=T1, from_key=None, after_id=None, limit=10) == []
    assert [e.to_key for _, e in await store.blocked_sends(before_id=None, limit=10)] == [T2]
    assert not await store.footer_sent(F2, T1)
    assert (await store.get_records("hash:abc", ["*"]))["*"] == suppression
    assert (await store.get_records(T2, [F1]))[F1].status is OUT


async def test_prune_drops_what_is_older_than_retention(store: ConsentStore) -> None:
    await store.apply([change(at=100), change(to_key=T2, at=300)])
    for at in (100, 200, 300):
        await store.log_blocked(BlockedSend(at, "twilio", F1, T1, "opt-out", "r", 1, "00"))
    assert await store.prune(blocked_before_us=None, history_before_us=None) == 0
    assert await store.prune(blocked_before_us=250, history_before_us=200) == 3
    assert [e.at_us for _, e in await store.blocked_sends(before_id=None, limit=10)] == [300]
    history = await store.history(to_key=None, from_key=None, after_id=None, limit=10)
    assert [h.to_key for h in history] == [T2]


async def test_named_values(store: ConsentStore) -> None:
    assert await store.get_value("subscription") is None
    await store.set_value("subscription", "one")
    await store.set_value("subscription", "two")
    assert await store.get_value("subscription") == "two"
    await store.set_value("subscription", None)
    await store.set_value("subscription", None)
    assert await store.get_value("subscription") is None


async def test_service_membership_is_additive_and_may_move(store: ConsentStore) -> None:
    one, two = "MG" + "1" * 32, "MG" + "2" * 32
    await store.set_service_numbers(one, [F1, F2, F1])
    await store.set_service_numbers(two, [F2])
    await store.set_service_numbers(two, [])
    assert await store.service_numbers() == {F1: one, F2: two}


async def test_list_records_pages_backwards(store: ConsentStore) -> None:
    numbers = [f"+1650555{n:04d}" for n in range(10)]
    await store.apply([change(to_key=n, from_key=f) for n in numbers for f in (F1, "*")])
    page = await store.list_records(RecordQuery(), after=None, limit=3, before=(numbers[5], F1))
    # Ascending, and "*" sorts before "+" byte by byte.
    assert [(r.to_key, r.from_key) for r in page] == [
        (numbers[4], "*"),
        (numbers[4], F1),
        (numbers[5], "*"),
    ]
    filtered = await store.list_records(
        RecordQuery(from_keys=("*",)), after=None, limit=2, before=(numbers[9], "*")
    )
    assert [r.to_key for r in filtered] == numbers[7:9]


async def test_an_ordered_queue_is_delivered_one_entry_at_a_time(store: ConsentStore) -> None:
    items = [
        OutboxItem("push", "k1", not_before_us=0, ordering_key="K"),
        OutboxItem("event", "free", not_before_us=0),
        OutboxItem("push", "k2", not_before_us=0, ordering_key="K"),
    ]
    outcome = await store.record_inbound("twilio", "SM9", 100, [], items)
    assert outcome.outbox_ids == sorted(outcome.outbox_ids) and len(outcome.outbox_ids) == 3
    await store.outbox_heartbeat("w", 1_000)
    first = await store.claim_outbox(1_000, 10, 500, "w", 300)
    assert [e.payload for e in first] == ["k1", "free"]
    assert all(not e.in_flight for e in first)
    await store.outbox_begin(first[0].id)
    await store.outbox_heartbeat("w", 1_100)
    assert await store.claim_outbox(1_100, 10, 500, "w", 300) == []
    # The lease ran out with the delivery begun: it comes back marked in flight, still first.
    again = await store.claim_outbox(2_000, 10, 500, "w2", 300)
    assert [(e.payload, e.in_flight) for e in again] == [("k1", True), ("free", False)]
    await store.outbox_done(first[0].id)
    await store.outbox_retry(first[1].id, not_before_us=0, error="later")
    nxt = await store.claim_outbox(2_100, 10, 500, "w3", 300)
    assert [(e.payload, e.in_flight, e.attempts) for e in nxt] == [
        ("free", False, 1),
        ("k2", False, 0),
    ]


async def test_the_outbox_goes_in_the_order_its_entries_fall_due(store: ConsentStore) -> None:
    items = [
        OutboxItem("a", "later", not_before_us=300),
        OutboxItem("a", "first", not_before_us=100),
        OutboxItem("a", "not yet", not_before_us=5_000),
        OutboxItem("a", "together 1", not_before_us=200),
        OutboxItem("a", "together 2", not_before_us=200),
        # An ordered queue keeps the order it was queued in, whatever falls due first.
        OutboxItem("push", "k1", not_before_us=400, ordering_key="K"),
        OutboxItem("push", "k2", not_before_us=150, ordering_key="K"),
    ]
    await store.record_inbound("twilio", "SM10", 50, [], items)
    due = await store.due_outbox(now_us=1_000, limit=10)
    expected = ["first", "k2", "together 1", "together 2", "later", "k1"]
    assert [e.payload for e in due] == expected
    await store.outbox_heartbeat("w", 1_000)
    taken = await store.claim_outbox(1_000, 3, 500, "w", 300)
    assert [e.payload for e in taken] == ["first", "together 1", "together 2"]
    rest = await store.claim_outbox(1_000, 10, 500, "w", 300)
    assert [e.payload for e in rest] == ["later", "k1"]
    for entry in [*taken, *rest]:
        await store.outbox_done(entry.id)
    assert [e.payload for e in await store.claim_outbox(2_000, 10, 500, "w", 300)] == ["k2"]


async def test_a_queue_whose_head_must_wait_holds_back_only_its_own_entries(
    store: ConsentStore,
) -> None:
    items = [
        OutboxItem("event", "a1", not_before_us=0, ordering_key="A"),
        OutboxItem("event", "a2", not_before_us=0, ordering_key="A"),
        OutboxItem("event", "b1", not_before_us=0, ordering_key="B"),
        OutboxItem("event", "b2", not_before_us=0, ordering_key="B"),
        OutboxItem("reply", "free", not_before_us=0),
    ]
    await store.record_inbound("twilio", "SM11", 100, [], items)
    await store.outbox_heartbeat("w", 1_000)
    a1, b1, free = await store.claim_outbox(1_000, 10, 500, "w", 300)
    assert [a1.payload, b1.payload, free.payload] == ["a1", "b1", "free"]
    # A's subscriber is down: its head waits for its retry, and so does everything behind it.
    await store.outbox_retry(a1.id, not_before_us=5_000, error="subscriber answered 503")
    await store.outbox_done(b1.id)
    await store.outbox_done(free.id)
    await store.outbox_heartbeat("w", 2_000)
    [b2] = await store.claim_outbox(2_000, 10, 500, "w", 300)
    assert b2.payload == "b2"
    await store.outbox_done(b2.id)
    assert [e.payload for e in await store.claim_outbox(5_000, 10, 500, "w", 300)] == ["a1"]


async def test_two_store_instances_on_one_database_stamp_in_one_order(
    store_url: Callable[[], str],
) -> None:
    """Several gateways share one store: live stamps never repeat or go back, across them."""
    first, second = store_from_url(store_url()), store_from_url(store_url())
    await first.open()
    await second.open()
    try:
        results = await asyncio.gather(
            *(
                (first if n % 2 else second).apply([change(to_key=f"+1650559{n:04d}")])
                for n in range(60)
            )
        )
        stamps = [r.record.modified_us for [r] in results]
        assert len(set(stamps)) == len(stamps)
        history = await first.history(to_key=None, from_key=None, after_id=None, limit=100)
        in_id_order = [h.modified_us for h in history]
        assert in_id_order == sorted(in_id_order) and len(history) == 60
    finally:
        await first.close()
        await second.close()


async def test_changes_since_names_what_changed(store: ConsentStore) -> None:
    start = await store.changes_since(None)
    assert start.flush_all
    await store.apply([change(to_key=T1), change(to_key=T2)])
    batch = await store.changes_since(start.cursor)
    assert set(batch.pairs) == {(F1, T1), (F1, T2)} and not batch.flush_all
    assert await store.changes_since(batch.cursor) == type(batch)(batch.cursor, False, False, ())
    await store.set_service_numbers("MG" + "3" * 32, [F1])
    assert (await store.changes_since(batch.cursor)).services
    head = (await store.changes_since(None)).cursor
    await store.apply([change(to_key=f"+1650554{n:04d}") for n in range(300)])
    assert (await store.changes_since(head)).flush_all


async def test_the_blocked_log_is_filtered_counted_and_paged(store: ConsentStore) -> None:
    entries = [
        BlockedSend(100, "twilio", F1, T1, "opt-out", "a", 1, "00"),
        BlockedSend(200, "ringcentral", F2, T1, "opt-out-all", "b", 1, "00"),
        BlockedSend(300, "twilio", F1, T2, "opt-out", "c", 1, "00"),
        BlockedSend(400, "twilio", F2, T2, "no-opt-in", "d", 1, "00"),
    ]
    for entry in entries:
        await store.log_blocked(entry)

    async def find(query: BlockedQuery, before_id: int | None = None) -> list[str]:
        found = await store.find_blocked(query, before_id=before_id, limit=10)
        return [e.request_id for _, e in found]

    assert await find(BlockedQuery()) == ["d", "c", "b", "a"]
    assert await find(BlockedQuery(from_us=200, to_us=400)) == ["c", "b"]
    assert await find(BlockedQuery(from_key=F1)) == ["c", "a"]
    assert await find(BlockedQuery(to_key=T1, dialect="ringcentral")) == ["b"]
    assert await find(BlockedQuery(reasons=("opt-out", "no-opt-in"))) == ["d", "c", "a"]
    [(newest_id, _)] = await store.find_blocked(BlockedQuery(), before_id=None, limit=1)
    assert await find(BlockedQuery(from_key=F2), before_id=newest_id) == ["b"]
    assert await store.blocked_totals(BlockedQuery()) == {
        "opt-out": 2,
        "opt-out-all": 1,
        "no-opt-in": 1,
    }
    assert await store.blocked_totals(BlockedQuery(to_key=T2, reasons=("opt-out",))) == {
        "opt-out": 1
    }


async def test_daily_activity_counts_blocked_sends_and_opt_outs(store: ConsentStore) -> None:
    day = DAY_US
    await store.apply([change(at=day + 5), change(to_key=T2, status=IN, at=day + 6)])
    await store.apply([change(from_key=F2, at=3 * day + 1), change(to_key="+16505550113", at=9)])
    for at in (day + 1, day + 2, 2 * day):
        await store.log_blocked(BlockedSend(at, "twilio", F1, T1, "opt-out", "r", 1, "00"))
    activity = await store.daily_activity(from_us=day, to_us=3 * day + 2)
    assert [(a.day, a.blocked, a.opted_out) for a in activity] == [(1, 2, 1), (2, 1, 0), (3, 0, 1)]
    assert await store.daily_activity(from_us=4 * day, to_us=5 * day) == []


async def test_console_sessions_expire_and_end(store: ConsentStore) -> None:
    first = ConsoleSession("h1", "alice", "admin", "csrf1", created_us=100, expires_us=200)
    await store.create_console_session(first)
    assert await store.console_session("h1", now_us=150) == first
    assert await store.console_session("h1", now_us=200) is None
    assert await store.console_session("nope", now_us=150) is None
    second = ConsoleSession("h2", "bob", "auditor", "csrf2", created_us=300, expires_us=900)
    await store.create_console_session(second)  # forgets h1, expired by then
    await store.create_console_session(ConsoleSession("h1", "alice", "admin", "c", 300, 400))
    await store.delete_console_session("h2")
    await store.delete_console_session("h2")
    assert await store.console_session("h2", now_us=350) is None
    assert (await store.console_session("h1", now_us=350)) is not None


# --- PostgreSQL only: the URL, the pool, timeouts, lost connections, retries, migrations -------


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    with postgres.schema(postgres_server) as url:
        yield url


def test_postgres_url_options() -> None:
    options = parse_postgres_url(
        "postgresql://u:p@db.example:6432/stopgate?statement_timeout_ms=250&schema=sg"
        "&statement_cache_size=0&sslmode=require&pool_max_size=4"
    )
    assert options.dsn == "postgresql://u:p@db.example:6432/stopgate?sslmode=require"
    assert (options.statement_cache_size, options.pool_max_size, options.schema) == (0, 4, "sg")
    assert options.server_settings() == {
        "application_name": "stopgate",
        "statement_timeout": "250",
        "idle_in_transaction_session_timeout": "60000",
        "search_path": "sg",
    }
    no_timeouts = parse_postgres_url(
        "postgres://h/db?statement_timeout_ms=0&idle_in_transaction_timeout_ms=0"
    )
    assert no_timeouts.server_settings() == {"application_name": "stopgate"}
    for bad in (
        "postgresql://h/db?statment_timeout_ms=5",
        "postgresql://h/db?statement_timeout_ms=soon",
        "postgresql://h/db?schema=Robert');DROP",
        "postgresql://h/",
    ):
        with pytest.raises(ConfigError):
            store_from_url(bad)


async def test_postgres_unreachable_server_is_store_unavailable() -> None:
    store = store_from_url(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x?connect_timeout_ms=500"
    )
    with pytest.raises(StoreUnavailable):
        await store.open()
    await store.close()


async def _admin(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_postgres_lost_connections_are_replaced_and_work_goes_on(pg_url: str) -> None:
    name = f"sg_{os.getpid()}_{id(pg_url)}"
    store = store_from_url(f"{pg_url}&application_name={name}&pool_min_size=3")
    await store.open()
    try:
        await store.apply([change()])
        killed = await _admin(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        assert len(killed) >= 1
        assert (await store.get_records(T1, [F1]))[F1].status is OUT
        await _admin(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        [applied] = await store.apply([change(status=IN)])
        assert applied.applied
    finally:
        await store.close()


async def test_postgres_a_write_cut_off_before_commit_is_done_once(pg_url: str) -> None:
    name = f"sg_cut_{os.getpid()}"
    store = store_from_url(f"{pg_url}&application_name={name}")
    await store.open()
    holder = await asyncpg.connect(pg_url.split("?")[0])
    schema = pg_url.rsplit("schema=", 1)[1]
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute(f'SELECT * FROM "{schema}".clock FOR UPDATE')
        write = asyncio.create_task(store.apply([change()]))
        waiting: list[asyncpg.Record] = []
        for _ in range(200):  # until the write waits for the clock inside its transaction
            waiting = await _admin(
                pg_url,
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
                " AND wait_event_type = 'Lock'",
                name,
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting
        await _admin(pg_url, "SELECT pg_terminate_backend($1)", waiting[0][0])
        await hold.rollback()
        [applied] = await write
        assert applied.applied
        history = await store.history(to_key=T1, from_key=None, after_id=None, limit=10)
        assert len(history) == 1
    finally:
        await holder.close()
        await store.close()


async def test_postgres_statement_timeout_fails_closed(pg_url: str) -> None:
    store = store_from_url(f"{pg_url}&statement_timeout_ms=200")
    await store.open()
    holder = await asyncpg.connect(pg_url.split("?")[0])
    try:
        schema = pg_url.rsplit("schema=", 1)[1]
        async with holder.transaction():
            await holder.execute(f'SELECT * FROM "{schema}".clock FOR UPDATE')
            started = asyncio.get_running_loop().time()
            with pytest.raises(StoreUnavailable, match="statement timeout"):
                await store.apply([change()])
            assert asyncio.get_running_loop().time() - started < 2.0
            assert await store.get_records(T1, [F1]) == {}  # reads never wait for the clock
    finally:
        await holder.close()
        await store.close()


async def test_postgres_concurrent_start_ups_migrate_once(pg_url: str) -> None:
    stores = [store_from_url(pg_url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        schema = pg_url.rsplit("schema=", 1)[1]
        rows = await _admin(pg_url, f'SELECT version FROM "{schema}".schema_migrations')
        assert sorted(r[0] for r in rows) == list(range(1, len(PG_MIGRATIONS) + 1))
        await stores[0].apply([change()])
        assert (await stores[4].get_records(T1, [F1]))[F1].status is OUT
    finally:
        for s in stores:
            await s.close()


async def test_postgres_without_statement_cache_for_pgbouncer(pg_url: str) -> None:
    store = store_from_url(f"{pg_url}&statement_cache_size=0&pool_max_size=1")
    await store.open()
    try:
        for _ in range(2):  # the bulk path twice on the one connection
            results = await store.apply(
                [change(to_key=f"+1650553{n:04d}", status=IN) for n in range(600)]
            )
            assert all(r.applied for r in results)
        assert len(await store.list_records(RecordQuery(), after=None, limit=1000)) == 600
    finally:
        await store.close()


class _FakeTransaction:
    def __init__(self, conn: _FakeConnection) -> None:
        self.conn = conn

    async def start(self) -> None:
        pass

    async def commit(self) -> None:
        self.conn.commits += 1
        if self.conn.commit_errors:
            raise self.conn.commit_errors.pop(0)

    async def rollback(self) -> None:
        pass


class _FakeConnection:
    def __init__(self, commit_errors: list[BaseException]) -> None:
        self.commit_errors = commit_errors
        self.commits = 0

    def transaction(self) -> _FakeTransaction:
        return _FakeTransaction(self)

    def terminate(self) -> None:
        pass


class _FakePool:
    def __init__(self, conn: _FakeConnection) -> None:
        self.conn = conn

    async def acquire(self, timeout: float) -> _FakeConnection:  # noqa: ASYNC109
        return self.conn

    async def release(self, conn: _FakeConnection) -> None:
        pass

    async def expire_connections(self) -> None:
        pass

    def terminate(self) -> None:
        pass


async def _nothing(conn: object) -> str:
    return "done"


@pytest.mark.parametrize(
    ("error", "idempotent", "retried"),
    [
        (asyncpg.SerializationError("could not serialize"), False, True),
        (asyncpg.DeadlockDetectedError("deadlock"), False, True),
        (asyncpg.ConnectionDoesNotExistError("closed during COMMIT"), False, False),
        (asyncpg.ConnectionDoesNotExistError("closed during COMMIT"), True, True),
        (asyncpg.UniqueViolationError("duplicate"), False, False),
    ],
)
async def test_postgres_writes_are_retried_only_when_they_surely_did_not_commit(
    error: BaseException, idempotent: bool, retried: bool
) -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1/none")
    conn = _FakeConnection([error])
    store._pool = _FakePool(conn)
    if retried:
        assert await store._write(_nothing, idempotent=idempotent) == "done"
        assert conn.commits == 2
    else:
        with pytest.raises(StoreUnavailable):
            await store._write(_nothing, idempotent=idempotent)
        assert conn.commits == 1


async def test_a_change_by_another_writer_wakes_a_waiting_reader(
    store: ConsentStore, store_url: Callable[[], str]
) -> None:
    """PostgreSQL pushes changes (LISTEN/NOTIFY): a waiting reader wakes at the other's commit.
    SQLite does not push: the wait simply lasts its time, and readers poll."""
    other = store_from_url(store_url())
    await other.open()
    try:
        await store.wait_for_changes(0)  # listening before the write
        waiting = asyncio.create_task(store.wait_for_changes(1.5))
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        await other.apply([change(to_key="+16505550177")])
        woken = await waiting
        elapsed = asyncio.get_running_loop().time() - started
        if store.pushes_changes:
            assert woken and elapsed < 1.0
        else:
            assert not woken
    finally:
        await other.close()


async def test_blocked_sends_logged_together_are_all_kept(store: ConsentStore) -> None:
    entries = [
        BlockedSend(n, "twilio", F1, f"+1650555{n:04d}", "opt-out", f"req-{n}", 1, "ab" * 32)
        for n in range(20)
    ]
    await store.log_blocked_many(entries)
    logged = await store.blocked_sends(before_id=None, limit=100)
    assert sorted(e.request_id for _, e in logged) == sorted(e.request_id for e in entries)


async def test_concurrent_writes_each_land_and_one_bad_write_fails_alone(
    store: ConsentStore,
) -> None:
    """Writes arriving together (a burst of STOPs) may share a commit: each caller still gets its
    own outcome, the good ones are all stored, and a write of text no store can encode fails
    alone."""

    def change(n: int, note: str | None = None) -> ConsentChange:
        return ConsentChange(
            "+16505550100", f"+1650555{n:04d}", OptStatus.OPT_OUT, Source.RECIPIENT, "t", note
        )

    good = [store.apply([change(n)]) for n in range(40)]
    bad = store.apply([change(99, note="broken \ud800 text")])
    outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(outcomes[-1], StoreUnavailable)
    assert all(isinstance(o, list) and o[0].applied for o in outcomes[:-1])
    for n in range(40):
        record = (await store.get_records(f"+1650555{n:04d}", ["+16505550100"]))["+16505550100"]
        assert record.status is OptStatus.OPT_OUT
    assert await store.get_records("+16505550099", ["+16505550100"]) == {}
