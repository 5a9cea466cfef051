"""The consent index: a bounded in-process cache in front of the store.

Entries are keyed by ``(from_key, to_key)`` and hold the record or ``None`` (known to have no
record). Every write through :meth:`ConsentIndex.apply` drops the affected entries. A generation
counter stops a lookup that raced a write from caching the value it read before the write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cachetools import LRUCache

from gateway.store.base import AppliedChange, ConsentChange, ConsentStore, FollowUp
from policy.consent import ConsentRecord, newest

PairKey = tuple[str, str]


@dataclass(slots=True)
class FeedState:
    """How well this process follows the store's change feed (see :mod:`gateway.change_feed`)."""

    healthy: bool = False
    last_ok: float = 0.0
    """Monotonic time of the last successful read of the feed."""

    def lag(self) -> float:
        return time.monotonic() - self.last_ok if self.last_ok else float("inf")


class ConsentIndex:
    def __init__(self, store: ConsentStore, size: int) -> None:
        self.store = store
        self.capacity = max(size, 1)
        self._entries: LRUCache[PairKey, ConsentRecord | None] = LRUCache(maxsize=self.capacity)
        self._generation = 0
        self.hits = 0
        self.misses = 0
        self.services: dict[str, str] = {}
        """Business number key -> Messaging Service key (configured and learned)."""
        self.trusted = False
        """Whether cached entries may be used: only while the change feed is followed (a
        change by another process would otherwise go unseen). Untrusted, every lookup reads
        the store."""
        self._pending: dict[PairKey, ConsentRecord] = {}
        """Changes acknowledged but not yet in the store (spooled while it was down)."""

    def __len__(self) -> int:
        return len(self._entries)

    async def records(self, to_key: str, from_keys: Sequence[str]) -> list[ConsentRecord | None]:
        """The records of ``(f, to_key)`` for each ``f``, in order (``None``: no record)."""
        entries = self._entries
        found: dict[str, ConsentRecord | None] = {}
        missing: list[str] = []
        trusted = self.trusted
        for from_key in from_keys:
            key = (from_key, to_key)
            if trusted and key in entries:
                found[from_key] = entries[key]
            else:
                missing.append(from_key)
        if missing:
            self.misses += 1
            generation = self._generation
            fetched = await self.store.get_records(to_key, missing)
            current = trusted and self.trusted and generation == self._generation
            for from_key in missing:
                record = fetched.get(from_key)
                found[from_key] = record
                if current:
                    entries[(from_key, to_key)] = record
        else:
            self.hits += 1
        if self._pending:
            for from_key in from_keys:
                spooled = self._pending.get((from_key, to_key))
                if spooled is not None:
                    found[from_key] = newest((found[from_key], spooled))
        return [found[from_key] for from_key in from_keys]

    def add_pending(self, records: Iterable[ConsentRecord]) -> None:
        """Honour changes that are durable in the spool but not yet in the store."""
        for record in records:
            key = (record.from_key, record.to_key)
            self._pending[key] = newest((self._pending.get(key), record)) or record

    def clear_pending(self) -> None:
        self._pending.clear()
        self.clear()

    async def apply(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> list[AppliedChange]:
        """Write through to the store and drop what the write made stale."""
        try:
            return await self.store.apply(changes, follow_up)
        finally:
            # Also on failure: a write whose outcome is unknown may have committed.
            self.invalidate((c.from_key, c.to_key) for c in changes)

    def invalidate(self, keys: Iterable[PairKey]) -> None:
        self._generation += 1
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def service_of(self, number_key: str | None) -> str | None:
        return None if number_key is None else self.services.get(number_key)
