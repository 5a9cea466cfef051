"""The wall clock of rules that depend on the time of day (quiet hours, frequency caps).

One instance per app (``CLOCK``); ``create_app(settings, clock=…)`` takes another, so tests set
the time of day they need instead of waiting for it.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable


class Clock:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        """Seconds since the Unix epoch (UTC)."""

    def now_us(self) -> int:
        return int(self._now() * 1_000_000)

    def now(self) -> _dt.datetime:
        """The current instant as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self._now(), _dt.UTC)
