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
from gateway.keys import INDEX, SETTINGS
from gateway.store.base import RecordQuery
from policy.consent import ConsentRecord, OptStatus, Source
from policy.numbers import WILDCARD

log = logging.getLogger("stopgate.erasure")

ALIAS_PREFIX = "erased:"
_PRUNE_EVERY_SECONDS = 3600.0


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


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.blocked_log_retention_days and not settings.history_retention_days:
        yield
        return

    async def prune_forever() -> None:
        while True:
            now_us = time.time_ns() // 1000
            day_us = 86_400 * 1_000_000
            try:
                removed = await app[INDEX].store.prune(
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
            except StoreUnavailable as exc:
                log.warning("retention pruning skipped: %s", exc)
            await asyncio.sleep(_PRUNE_EVERY_SECONDS)

    task = asyncio.create_task(prune_forever(), name="stopgate-retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
