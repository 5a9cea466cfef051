"""Frequency caps: at most N marketing sends to one recipient within a sliding window.

Florida, Oklahoma and Maryland allow three marketing texts per 24 hours; that is the default
once caps are on. A cap is per recipient across every business number of the deployment (one
deployment is one sender). Counts live in the store so that every gateway sharing it counts
the same sends; this module decides which cap applies and whether a history of sends admits
one more.

What counts: a send that was forwarded. A send refused here or for any other reason does not
count, and neither does one the carrier refused (the gateway gives its slot back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from policy.quiet_hours import config_flag, known_keys
from policy.us_states import AREA_CODES, state_of

HOUR_US = 3_600 * 1_000_000


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``count`` sends within any ``window_us`` (microseconds)."""

    count: int
    window_us: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.window_us < 1:
            raise ValueError("a cap needs a count and a window of at least 1")

    def __str__(self) -> str:
        return f"{self.count} per {self.window_us / HOUR_US:g} h"


STATE_CAP = Cap(3, 24 * HOUR_US)
DEFAULT_STATE_CAPS: Mapping[str, Cap] = MappingProxyType({state: STATE_CAP for state in AREA_CODES})


@dataclass(frozen=True, slots=True)
class FrequencyCaps:
    enabled: bool = False
    default: Cap | None = None
    """The cap of recipients in no capped state (None: uncapped)."""
    states: Mapping[str, Cap] = field(default_factory=lambda: DEFAULT_STATE_CAPS)

    def cap_for(self, to_key: str) -> Cap | None:
        """The cap of a canonical customer key, or None when it has none (or caps are off)."""
        if not self.enabled:
            return None
        state = state_of(to_key)
        if state is not None and state in self.states:
            return self.states[state]
        return self.default

    def longest_window_us(self) -> int:
        """The longest window of any configured cap (0 when none): counts older than this
        before now decide nothing any more."""
        caps = [*self.states.values(), *([self.default] if self.default is not None else [])]
        return max((cap.window_us for cap in caps), default=0)


def admits(sent_at_us: Iterable[int], now_us: int, cap: Cap) -> bool:
    """Whether one more send at ``now_us`` stays within ``cap``, given the times of the sends
    already counted: those after ``now_us - window`` must be fewer than the count. A time after
    ``now_us`` counts too: another gateway's clock may run a little ahead of this one's."""
    since = now_us - cap.window_us
    return sum(1 for t in sent_at_us if t > since) < cap.count


def frequency_caps_from_config(raw: Any) -> FrequencyCaps:
    """The ``[frequency_caps]`` table (or a boolean: on with the defaults). Caps are written
    ``{ count = 3, hours = 24 }``; raises ``ValueError`` naming the bad entry."""
    if isinstance(raw, bool | str):
        return FrequencyCaps(enabled=config_flag(raw))
    if not isinstance(raw, Mapping):
        raise ValueError("frequency_caps must be a table (or true/false)")
    known_keys(raw, {"enabled", "default", "states"}, "frequency_caps")
    default = _cap(raw["default"], "frequency_caps.default") if "default" in raw else None
    states = dict(DEFAULT_STATE_CAPS)
    raw_states = raw.get("states", {})
    if not isinstance(raw_states, Mapping):
        raise ValueError("frequency_caps.states must be a table of STATE = { count, hours }")
    for state, cap in raw_states.items():
        states[str(state).upper()] = _cap(cap, f"frequency_caps.states.{state}")
    return FrequencyCaps(config_flag(raw.get("enabled", False)), default, MappingProxyType(states))


def _cap(raw: Any, where: str) -> Cap:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table {{ count = N, hours = H }}")
    known_keys(raw, {"count", "hours"}, where)
    try:
        count, hours = int(raw["count"]), float(raw["hours"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where} needs a whole count and a number of hours") from None
    return Cap(count, round(hours * HOUR_US))
