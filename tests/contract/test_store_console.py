"""The store methods the compliance console needs, on every backend.

``find_blocked`` / ``blocked_totals`` (the blocked-send log filtered, keyset-paged, counted per
reason), ``daily_activity`` (blocks and opt-outs per UTC day, for the chart) and the console's
sessions (``create_console_session`` / ``console_session`` / ``delete_console_session``), and
the review entries of plain-language revocation (``add_review``: one entry per provider message,
one clarification per pair and window decided in the same transaction; ``reviews``;
``resolve_review``; ``erase`` removing a customer's entries).

A backend joins by adding its name to ``BACKENDS`` (``store_url`` already knows PostgreSQL, through
``tests.support.postgres`` as ``test_store.py`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store import store_from_url
from gateway.store.base import (
    DAY_US,
    BlockedQuery,
    BlockedSend,
    ConsentChange,
    ConsentStore,
    ConsoleSession,
    DailyActivity,
    ReviewEntry,
)
from policy.consent import OptStatus, Source

F1, F2, T1, T2 = "+16505550100", "+16505550101", "+16505550111", "+16505550112"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the module (skipped where none can be had, failed in CI)."""
    from tests.support import postgres  # only where the backend is enabled

    with postgres.server_or_skip() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'console.db'}"
        return
    from tests.support import postgres

    with postgres.schema(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ConsentStore]:
    s = store_from_url(store_url)
    await s.open()
    yield s
    await s.close()


def blocked(
    at: int,
    *,
    from_key: str = F1,
    to_key: str = T1,
    reason: str = "opt-out",
    dialect: str = "twilio",
    text: str | None = None,
) -> BlockedSend:
    return BlockedSend(at, dialect, from_key, to_key, reason, f"req-{at}", 5, "ab" * 32, text)


async def seed(store: ConsentStore) -> None:
    entries = [
        blocked(100),
        blocked(200, to_key=T2, reason="opt-out-all"),
        blocked(300, dialect="ringcentral", text="<script>alert(1)</script>"),
        blocked(400, from_key=F2, reason="no-opt-in"),
        blocked(500, reason="would-block:opt-out"),
        blocked(600, to_key=T2, dialect="ringcentral", reason="opt-out-all"),
    ]
    for entry in entries:
        await store.log_blocked(entry)


async def times(store: ConsentStore, query: BlockedQuery, limit: int = 100) -> list[int]:
    return [e.at_us for _, e in await store.find_blocked(query, before_id=None, limit=limit)]


async def test_every_filter_narrows_the_blocked_log(store: ConsentStore) -> None:
    await seed(store)
    assert await times(store, BlockedQuery()) == [600, 500, 400, 300, 200, 100]
    assert await times(store, BlockedQuery(from_us=200, to_us=500)) == [400, 300, 200]
    assert await times(store, BlockedQuery(from_key=F2)) == [400]
    assert await times(store, BlockedQuery(to_key=T2)) == [600, 200]
    assert await times(store, BlockedQuery(reasons=("opt-out-all", "no-opt-in"))) == [600, 400, 200]
    assert await times(store, BlockedQuery(dialect="ringcentral")) == [600, 300]
    combined = BlockedQuery(to_key=T2, dialect="ringcentral", reasons=("opt-out-all",))
    assert await times(store, combined) == [600]
    assert await times(store, BlockedQuery(to_key="+19999999999")) == []
    [(_, entry)] = await store.find_blocked(
        BlockedQuery(from_us=300, to_us=301), before_id=None, limit=5
    )
    assert entry == blocked(300, dialect="ringcentral", text="<script>alert(1)</script>")


async def test_blocked_log_pages_by_id_newest_first(store: ConsentStore) -> None:
    await seed(store)
    query = BlockedQuery(from_us=150)
    first = await store.find_blocked(query, before_id=None, limit=2)
    second = await store.find_blocked(query, before_id=first[-1][0], limit=2)
    third = await store.find_blocked(query, before_id=second[-1][0], limit=2)
    assert [e.at_us for _, e in first + second + third] == [600, 500, 400, 300, 200]
    ids = [i for i, _ in first + second + third]
    assert ids == sorted(ids, reverse=True)
    # The old unfiltered reader is the same query with no filter.
    assert await store.blocked_sends(before_id=None, limit=3) == await store.find_blocked(
        BlockedQuery(), before_id=None, limit=3
    )


async def test_totals_count_every_match_per_reason(store: ConsentStore) -> None:
    await seed(store)
    assert await store.blocked_totals(BlockedQuery()) == {
        "opt-out": 2,
        "opt-out-all": 2,
        "no-opt-in": 1,
        "would-block:opt-out": 1,
    }
    assert await store.blocked_totals(BlockedQuery(to_key=T2)) == {"opt-out-all": 2}
    assert await store.blocked_totals(BlockedQuery(dialect="ringcentral", from_us=350)) == {
        "opt-out-all": 1
    }
    assert await store.blocked_totals(BlockedQuery(to_key="+19999999999")) == {}


async def test_daily_activity_counts_blocks_and_opt_outs_per_utc_day(
    store: ConsentStore,
) -> None:
    day = 20_000  # 2024-10-04
    start = day * DAY_US
    for at in (start, start + 5, start + DAY_US - 1, start + 2 * DAY_US + 7):
        await store.log_blocked(blocked(at))
    await store.log_blocked(blocked(start - 1))  # the day before the range
    changes = [
        ConsentChange(F1, T1, OptStatus.OPT_OUT, Source.RECIPIENT, "r", modified_us=start + 10),
        # Not an opt-out: an opt-in on day + 1.
        ConsentChange(F2, T1, OptStatus.OPT_IN, Source.API, "a", modified_us=start + DAY_US),
        ConsentChange("*", T2, OptStatus.OPT_OUT, Source.API, "a", modified_us=start + DAY_US + 1),
        ConsentChange(F1, T2, OptStatus.OPT_OUT, Source.API, "a", modified_us=start + 3 * DAY_US),
    ]
    await store.apply(changes)
    activity = await store.daily_activity(from_us=start, to_us=start + 3 * DAY_US)
    assert activity == [
        DailyActivity(day, blocked=3, opted_out=1),
        DailyActivity(day + 1, blocked=0, opted_out=1),
        DailyActivity(day + 2, blocked=1, opted_out=0),
    ]
    assert await store.daily_activity(from_us=0, to_us=start - 1) == []


async def test_console_sessions_expire_and_end(store: ConsentStore) -> None:
    live = ConsoleSession("a" * 64, "admin-token", "admin", "csrf-1", 1_000, 5_000)
    await store.create_console_session(live)
    assert await store.console_session("a" * 64, 4_999) == live
    assert await store.console_session("a" * 64, 5_000) is None  # expired at expires_us
    assert await store.console_session("b" * 64, 1_000) is None
    await store.delete_console_session("a" * 64)
    assert await store.console_session("a" * 64, 2_000) is None
    await store.delete_console_session("a" * 64)  # nothing to delete: no error


async def test_creating_a_session_forgets_expired_ones(store: ConsentStore) -> None:
    old = ConsoleSession("c" * 64, "token:audit", "auditor", "csrf-2", 1_000, 2_000)
    await store.create_console_session(old)
    newer = ConsoleSession("d" * 64, "admin-token", "admin", "csrf-3", 3_000, 9_000)
    await store.create_console_session(newer)
    # Even a reader whose clock lags does not get the expired session back: it is gone.
    assert await store.console_session("c" * 64, 1_500) is None
    assert await store.console_session("d" * 64, 3_000) == newer


async def test_erasing_a_customer_erases_their_blocked_sends_from_the_console(
    store: ConsentStore,
) -> None:
    await seed(store)
    await store.erase(T2, None)
    assert await store.blocked_totals(BlockedQuery(to_key=T2)) == {}
    assert await times(store, BlockedQuery()) == [500, 400, 300, 100]


# --- review entries of plain-language revocation --------------------------------------


def rentry(message_id: str, at: int, *, from_key: str = F1, to_key: str = T1) -> ReviewEntry:
    return ReviewEntry(
        0,
        at,
        "twilio",
        message_id,
        from_key,
        to_key,
        "how do I unsubscribe?",
        "en.unsubscribe",
        'unclear: rule en.unsubscribe matched "unsubscribe"; guard question',
        "en",
    )


async def test_add_review_keeps_the_entry_and_clarifies_once_per_pair(store: ConsentStore) -> None:
    first = await store.add_review(rentry("SM1", 1_000), clarified_since_us=0)
    assert first is not None
    assert first.id > 0 and first.clarified and first.status == "open"
    assert first.text == "how do I unsubscribe?" and first.rule == "en.unsubscribe"
    second = await store.add_review(rentry("SM2", 2_000), clarified_since_us=0)
    assert second is not None and not second.clarified, "one clarification per pair and window"
    other_pair = await store.add_review(rentry("SM3", 2_500, from_key=F2), clarified_since_us=0)
    assert other_pair is not None and other_pair.clarified
    # The window has passed for the first clarification: ask again.
    later = await store.add_review(rentry("SM4", 9_000), clarified_since_us=1_500)
    assert later is not None and later.clarified


async def test_the_same_message_is_reviewed_once(store: ConsentStore) -> None:
    assert await store.add_review(rentry("SM1", 1_000), clarified_since_us=0) is not None
    assert await store.add_review(rentry("SM1", 1_001), clarified_since_us=0) is None
    assert len(await store.reviews(status=None, before_id=None, limit=10)) == 1


async def test_concurrent_deliveries_clarify_once(store: ConsentStore) -> None:
    added = await asyncio.gather(
        *(store.add_review(rentry(f"SM{n}", 1_000 + n), clarified_since_us=0) for n in range(6))
    )
    kept = [a for a in added if a is not None]
    assert len(kept) == 6
    assert sum(a.clarified for a in kept) == 1


async def test_reviews_filter_page_and_resolve(store: ConsentStore) -> None:
    ids = []
    for n in range(5):
        kept = await store.add_review(rentry(f"SM{n}", 1_000 + n, to_key=T2), clarified_since_us=0)
        assert kept is not None
        ids.append(kept.id)
    page = await store.reviews(status="open", before_id=None, limit=3)
    assert [r.id for r in page] == ids[::-1][:3]
    rest = await store.reviews(status="open", before_id=page[-1].id, limit=3)
    assert [r.id for r in rest] == ids[::-1][3:]

    closed = await store.resolve_review(ids[0], "dismissed", "alice", 5_000)
    assert closed is not None
    assert (closed.status, closed.resolved_us, closed.resolved_by) == ("dismissed", 5_000, "alice")
    assert dataclasses.replace(closed, status="open", resolved_us=None, resolved_by=None) == (
        page[-1] if page[-1].id == ids[0] else rest[-1]
    )
    assert await store.resolve_review(ids[0], "opted-out", "bob", 6_000) is None, "once"
    assert await store.resolve_review(999_999, "dismissed", "alice", 6_000) is None
    assert await store.resolve_review(ids[1], "opted-out", "bob", 6_000) is not None
    assert [r.id for r in await store.reviews(status="dismissed", before_id=None, limit=9)] == [
        ids[0]
    ]
    assert [r.id for r in await store.reviews(status="opted-out", before_id=None, limit=9)] == [
        ids[1]
    ]
    assert len(await store.reviews(status="open", before_id=None, limit=9)) == 3
    assert len(await store.reviews(status=None, before_id=None, limit=9)) == 5


async def test_erase_removes_the_customers_review_entries(store: ConsentStore) -> None:
    await store.add_review(rentry("SM1", 1_000, to_key=T1), clarified_since_us=0)
    await store.add_review(rentry("SM2", 1_000, to_key=T2), clarified_since_us=0)
    assert await store.erase(T1, None) >= 1
    left = await store.reviews(status=None, before_id=None, limit=9)
    assert [r.to_key for r in left] == [T2]
