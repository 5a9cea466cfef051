"""The children of the send path's lock-free metrics (:class:`gateway.metrics.LoopCounter`,
:class:`gateway.metrics.LoopHistogram`): what a send updates, compiled with the send path.

They are updated only from the event loop's thread, and read at scrape time on that thread too,
so they take no lock."""

from __future__ import annotations

import bisect
import time


class HistogramChild:
    """One label set's buckets (``counts[i]``: observations in bucket ``i``, the last one
    ``+Inf``; not cumulative), sum, and when it was made (for ``_created``)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.total += value


class CounterChild:
    """One label set's count, and when it was made (for ``_created``)."""

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount
