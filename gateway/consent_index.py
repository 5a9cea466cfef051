"""The consent index: a bounded in-process cache in front of the store.

Entries are keyed by ``(from_key, to_key)`` and hold the record or ``None`` (known to have no
record). Every write through :meth:`ConsentIndex.apply` drops the affected entries. A generation
counter stops a lookup that raced a write from caching the value it read before the write.

A customer's suppression list entries are cached beside them, by ``to_key``; publishing a list
flushes every cache through the change feed. While no list exists (the usual case) a lookup
costs nothing more - unless the cache is not trusted, when the store is always asked.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cachetools import LRUCache

from gateway.config import BrandSpec
from gateway.store.base import AppliedChange, ConsentChange, ConsentStore, FollowUp
from policy.consent import (
    ConsentRecord,
    DefaultConsent,
    OptOutScope,
    OptStatus,
    Suppression,
    keyword_scopes,
    newest,
)

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
        # Least recently used first. An OrderedDict alone (C code: lookup, move_to_end,
        # popitem) is both faster and smaller than cachetools' LRUCache, which wraps one.
        self._entries: OrderedDict[PairKey, ConsentRecord | None] = OrderedDict()
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
        self.brand_of: dict[str, str] = {}
        """Business number or service key -> its brand's key (configured)."""
        self.brand_scoped: frozenset[str] = frozenset()
        """Brands whose keywords are written for the whole brand (``opt_out_scope = "brand"``)."""
        self.defaults: dict[str, DefaultConsent] = {}
        """Number, service or brand key -> its own consent default (configured)."""
        self.has_suppressions = True
        """Whether any suppression list exists (reloaded by the change feed on every flush)."""
        # One entry per customer, and a send caches three consent entries per customer (its
        # pair, the wildcard's and its erasure alias's): half the room keeps every cached
        # customer's lists.
        self._suppressed: LRUCache[str, tuple[Suppression, ...]] = LRUCache(
            maxsize=max(self.capacity // 2, 1)
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def records(self, to_key: str, from_keys: Sequence[str]) -> list[ConsentRecord | None]:
        """The records of ``(f, to_key)`` for each ``f``, in order (``None``: no record)."""
        return (await self.records_many(((to_key, from_keys),)))[0]

    async def records_many(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[list[ConsentRecord | None]]:
        """:meth:`records` of each ``(to_key, from_keys)``; whatever the cache lacks is read
        from the store in one round trip."""
        if self.trusted and not self._pending:
            # The send path's usual case, kept cheap: every pair cached.
            entries = self._entries
            touch = entries.move_to_end
            try:
                found_all: list[list[ConsentRecord | None]] = []
                for to_key, from_keys in lookups:
                    row: list[ConsentRecord | None] = []
                    for from_key in from_keys:
                        key = (from_key, to_key)
                        row.append(entries[key])
                        touch(key)
                    found_all.append(row)
            except KeyError:
                pass
            else:
                self.hits += 1
                return found_all
        return await self._read_through(lookups)

    async def _read_through(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[list[ConsentRecord | None]]:
        entries = self._entries
        trusted = self.trusted
        found: dict[PairKey, ConsentRecord | None] = {}
        missing: list[tuple[str, list[str]]] = []
        for to_key, from_keys in lookups:
            lacking = []
            for from_key in from_keys:
                key = (from_key, to_key)
                if trusted and key in entries:
                    found[key] = entries[key]
                    entries.move_to_end(key)
                else:
                    lacking.append(from_key)
            if lacking:
                missing.append((to_key, lacking))
        if missing:
            self.misses += 1
            generation = self._generation
            if len(missing) == 1:
                fetched = [await self.store.get_records(*missing[0])]
            else:
                fetched = await self.store.get_records_many(missing)
            current = trusted and self.trusted and generation == self._generation
            for (to_key, lacking), records in zip(missing, fetched, strict=True):
                for from_key in lacking:
                    record = records.get(from_key)
                    found[(from_key, to_key)] = record
                    if current:
                        self._remember((from_key, to_key), record)
        else:
            self.hits += 1
        pending = self._pending
        if pending:
            for key, record in found.items():
                spooled = pending.get(key)
                if spooled is not None:
                    found[key] = newest((record, spooled))
        return [[found[(f, to_key)] for f in from_keys] for to_key, from_keys in lookups]

    def _remember(self, key: PairKey, record: ConsentRecord | None) -> None:
        entries = self._entries
        entries[key] = record
        entries.move_to_end(key)
        if len(entries) > self.capacity:
            entries.popitem(last=False)

    async def suppressions(self, to_key: str) -> tuple[Suppression, ...]:
        """The suppression list entries of a customer (cached like records)."""
        trusted = self.trusted
        if trusted:
            if not self.has_suppressions:
                return ()
            cached = self._suppressed.get(to_key)
            if cached is not None:
                return cached
        generation = self._generation
        found = tuple(await self.store.suppressions_of(to_key))
        if trusted and self.trusted and generation == self._generation:
            self._suppressed[to_key] = found
        return found

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
        self._suppressed.clear()

    def configure_brands(
        self, brands: Iterable[BrandSpec], consent_defaults: Mapping[str, DefaultConsent]
    ) -> None:
        """Take the configured brands and per-sender defaults (a brand's default is kept under
        its key, which :func:`policy.consent.default_for` ranks below a number's own)."""
        self.brand_of = {number: brand.key for brand in brands for number in brand.numbers}
        self.brand_scoped = frozenset(
            brand.key for brand in brands if brand.opt_out_scope is OptOutScope.BRAND
        )
        defaults = {b.key: b.consent_default for b in brands if b.consent_default is not None}
        self.defaults = {**defaults, **consent_defaults}

    def service_of(self, number_key: str | None) -> str | None:
        return None if number_key is None else self.services.get(number_key)

    def keyword_scopes(
        self,
        status: OptStatus,
        businesses: Sequence[str],
        service: str | None,
        *,
        everywhere: bool,
    ) -> tuple[str, ...]:
        """:func:`policy.consent.keyword_scopes` with the Messaging Services and brands known
        here."""
        return keyword_scopes(
            status,
            businesses,
            service,
            everywhere=everywhere,
            service_of=self.services,
            brand_of=self.brand_of,
            brand_scoped=self.brand_scoped,
        )
