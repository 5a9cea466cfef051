"""Keeps this process's consent cache coherent with writes made by other processes.

Every write that changes consent appends to the store's change feed in its own transaction;
this task follows the feed (every ``change_feed_interval``, 20 ms by default, so another
gateway's STOP is honoured here well within 100 ms) and drops the cache entries it names - or the
whole cache after a bulk write. When the feed cannot be read, the cache stops being trusted
(every lookup reads the store) until the feed is followed again; ``/readyz`` then reports
``degraded`` and ``stopgate_change_feed_healthy`` is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.consent_index import ConsentIndex, FeedState
from gateway.errors import StoreUnavailable
from gateway.keys import FEED, INDEX, METRICS, SETTINGS
from gateway.metrics import Metrics

log = logging.getLogger("stopgate.change_feed")

_KEEP_US = 600 * 1_000_000
_PRUNE_EVERY_S = 60.0


_SAFETY_POLL_S = 1.0
"""With pushed changes, the log is still read this often in case a notification was missed."""


async def follow(index: ConsentIndex, state: FeedState, metrics: Metrics, interval: float) -> None:
    cursor: int | None = None
    pruned = time.monotonic()
    store = index.store
    wait = max(interval, _SAFETY_POLL_S) if store.pushes_changes else interval
    while True:
        try:
            if store.pushes_changes and not state.healthy:
                # Listen first, then read the log: nothing committed in between goes unseen.
                await store.wait_for_changes(0)
            batch = await store.changes_since(cursor)
            if batch.services:
                index.services = dict(await store.service_numbers())
            if batch.flush_all or not state.healthy:
                # Suppression lists are published with a flush: learn whether any exist.
                index.has_suppressions = bool(await store.suppression_lists())
                index.clear()
            elif batch.pairs:
                index.invalidate(batch.pairs)
            cursor = batch.cursor
            if not state.healthy:
                log.info(
                    "change feed followed: the cache is trusted again",
                    extra={"event": "change-feed", "healthy": True},
                )
            state.healthy = True
            state.last_ok = time.monotonic()
            index.trusted = True
            if state.last_ok - pruned > _PRUNE_EVERY_S:
                pruned = state.last_ok
                await store.prune_changes(time.time_ns() // 1000 - _KEEP_US)
            metrics.change_feed_healthy.set(1)
            metrics.change_feed_lag.set(0)
            await store.wait_for_changes(wait)
        except StoreUnavailable as exc:
            # The log or (with pushed changes) the listener is lost: a change may go unseen,
            # so the cache is not trusted until both are back and the log was read again.
            if state.healthy:
                log.error(
                    "change feed lost: the cache is bypassed until it is back",
                    extra={"event": "change-feed", "healthy": False, "error": str(exc)},
                )
            state.healthy = False
            index.trusted = False
            metrics.change_feed_healthy.set(0)
            metrics.change_feed_lag.set(min(state.lag(), 1e9))
            await asyncio.sleep(interval)


async def change_feed_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[FEED]
    task = asyncio.create_task(
        follow(app[INDEX], state, app[METRICS], app[SETTINGS].change_feed_interval),
        name="stopgate-change-feed",
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
