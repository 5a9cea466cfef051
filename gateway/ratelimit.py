"""A limit on failed attempts per client, against guessing (the console's sign-in)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from cachetools import TTLCache


class FailureLimiter:
    """At most ``limit`` failures per ``window`` seconds from one key (a client address).

    Memory is bounded: at most ``max_keys`` addresses are remembered, each for ``window``
    seconds after its last failure.
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: TTLCache[str, deque[float]] = TTLCache(
            maxsize=max_keys, ttl=window, timer=clock
        )

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None when it may try now."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if len(failures) < self._limit:
            return None
        return max(1, math.ceil(failures[0] + self._window - now))

    def failed(self, key: str) -> None:
        failures = self._failures.get(key) or deque(maxlen=self._limit)
        failures.append(self._clock())
        self._failures[key] = failures  # re-set: the entry lives a window past its last failure
