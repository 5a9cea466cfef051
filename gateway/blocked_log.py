"""The blocked-send log, written with group commit.

A refusal is answered only after its log entry is durable, but refusals arriving together share
one transaction (one fsync): the first waiter writes everything queued so far, the others ride
on that commit. Under a burst of refusals (a bulk send to a list with many opt-outs) the log then
costs one commit per batch, not one per refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.store.base import BlockedSend, ConsentStore


class BlockedLog:
    def __init__(self, store: ConsentStore) -> None:
        self._store = store
        self._queued: list[tuple[BlockedSend, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, entries: Sequence[BlockedSend]) -> None:
        """Durable when it returns; raises what the store raised (e.g. StoreUnavailable)."""
        loop = asyncio.get_running_loop()
        futures = []
        for entry in entries:
            future: asyncio.Future[None] = loop.create_future()
            self._queued.append((entry, future))
            futures.append(future)
        if self._writer is None or self._writer.done():
            # A task of its own: a request that goes away never strands the others' entries.
            self._writer = asyncio.create_task(self._write_queued(), name="stopgate-blocked-log")
        await asyncio.gather(*futures)

    async def _write_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                await self._store.log_blocked_many([entry for entry, _ in batch])
            except Exception as exc:  # every waiter of this batch gets the failure
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
            else:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_result(None)
