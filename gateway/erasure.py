"""Erasing a customer's data while keeping them blocked, and retention of logs and history.

Erasure removes every record, history entry, blocked send and footer mark of one customer. If
any of their records was an opt-out, a suppression stays behind: a wildcard OptOut filed under a
keyed hash of the number (HMAC-SHA256 with a key kept in the store), which the send path checks
beside the number itself. So the number is no longer held, yet a send to it is still refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from functools import lru_cache

from aiohttp import web

from gateway.consent_index import ConsentIndex
from gateway.errors import StoreUnavailable
from gateway.keys import CLOCK, INDEX, SETTINGS
from gateway.store.base import ConsentStore, RecordQuery
from policy.consent import ConsentRecord, OptStatus, Source
from policy.numbers import WILDCARD

log = logging.getLogger("stopgate.erasure")

ALIAS_PREFIX = "erased:"
_PRUNE_EVERY_SECONDS = 3600.0
SEND_SLOT_PRUNE_BATCH = 5000
"""Expired frequency-cap counts deleted per transaction."""


@lru_cache(maxsize=65536)
def alias(key: bytes, to_key: str) -> str:
    """The keyed hash a suppression is filed under. Memoised: every send looks it up, and the
    same customers recur."""
    return ALIAS_PREFIX + hmac.new(key, to_key.encode(), hashlib.sha256).hexdigest()


async def erase(index: ConsentIndex, key: bytes, to_key: str) -> tuple[int, bool]:
    """Erase one customer; returns (rows removed, whether a suppression was kept)."""
    records = await index.store.list_records(RecordQuery(to_key=to_key), after=None, limit=100_000)
    opted_out = any(r.status is OptStatus.OPT_OUT for r in records)
    suppression = None
    if opted_out:
        suppression = ConsentRecord(
            WILDCARD,
            alias(key, to_key),
            OptStatus.OPT_OUT,
            Source.API,
            time.time_ns() // 1000,
            "erased customer who had opted out",
        )
    try:
        removed = await index.store.erase(to_key, suppression)
    finally:
        index.invalidate([(r.from_key, to_key) for r in records])
        if suppression is not None:
            index.invalidate([(WILDCARD, suppression.to_key)])
    return removed, opted_out


async def prune_send_slots(
    store: ConsentStore, before_us: int, batch: int = SEND_SLOT_PRUNE_BATCH
) -> int:
    """Forget every frequency-cap count taken at or before ``before_us``, ``batch`` rows per
    transaction (sends taking slots get the store in between); returns how many."""
    removed = 0
    while True:
        pruned = await store.prune_send_slots(before_us, batch)
        removed += pruned
        if pruned < batch:
            return removed
        await asyncio.sleep(0)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Hourly: drop blocked-send log entries and history past their retention periods, and
    frequency-cap counts older than the longest cap window (when caps are on)."""
    settings = app[SETTINGS]
    slot_window_us = (
        settings.frequency_caps.longest_window_us() if settings.frequency_caps.enabled else 0
    )
    if (
        not settings.blocked_log_retention_days
        and not settings.history_retention_days
        and not slot_window_us
    ):
        yield
        return

    async def prune_once() -> None:
        now_us = time.time_ns() // 1000
        day_us = 86_400 * 1_000_000
        store = app[INDEX].store
        if settings.blocked_log_retention_days or settings.history_retention_days:
            removed = await store.prune(
                blocked_before_us=(
                    now_us - settings.blocked_log_retention_days * day_us
                    if settings.blocked_log_retention_days
                    else None
                ),
                history_before_us=(
                    now_us - settings.history_retention_days * day_us
                    if settings.history_retention_days
                    else None
                ),
            )
            if removed:
                log.info("retention: %d old log and history rows removed", removed)
        if slot_window_us:
            # The app clock, the one slots are taken with (tests set it).
            slots_before_us = app[CLOCK].now_us() - slot_window_us
            removed = await prune_send_slots(store, slots_before_us)
            if removed:
                log.info("retention: %d expired frequency-cap counts removed", removed)

    async def prune_forever() -> None:
        while True:
            try:
                await prune_once()
            except StoreUnavailable as exc:
                log.warning("retention pruning skipped: %s", exc)
            await asyncio.sleep(_PRUNE_EVERY_SECONDS)

    task = asyncio.create_task(prune_forever(), name="stopgate-retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
