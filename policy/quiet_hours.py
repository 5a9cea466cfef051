"""Quiet hours: marketing texts only inside the recipient's local sending window.

Federal rules (TCPA) allow solicitations from 8:00 to 21:00 at the called party's location;
Florida, Oklahoma and Maryland allow 8:00 to 20:00 (see :mod:`policy.us_states`). A send is
allowed at an instant when the local time is inside the window in *every* zone the number may
be in (``phonenumbers.timezone`` lists them; a number spanning several is held to all of them,
so the strictest governs). A window is half open: ``08:00-21:00`` admits 08:00:00 up to
20:59:59.

When the zone of a number is unknown (``Etc/Unknown``, a non-phone channel address), the send
is refused - nothing proves the recipient is awake - unless a fallback zone is configured, which
then stands for the recipient's zone.

Only the marketing category is subject to quiet hours (see :mod:`policy.categories`).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from policy.us_states import AREA_CODES, EXTRA_ZONES

UNKNOWN_ZONE = "Etc/Unknown"
_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True, slots=True)
class Window:
    """Local sending hours ``[start, end)`` in minutes after midnight (``end`` at most 24:00;
    ``start == end`` admits nothing)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end <= 24 * 60:
            raise ValueError(f"a window runs forward within one day: {self}")

    def __and__(self, other: Window) -> Window:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Window(start, max(start, end))

    def admits(self, minute_of_day: int) -> bool:
        return self.start <= minute_of_day < self.end

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(text: str) -> Window:
    """``"08:00-21:00"`` -> :class:`Window`; raises ``ValueError`` for anything else."""
    match = _WINDOW.fullmatch(str(text))
    if match is None:
        raise ValueError(f"a window is written HH:MM-HH:MM, not {text!r}")
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sm > 59 or em > 59 or sh > 24 or eh > 24 or (eh == 24 and em) or (sh == 24):
        raise ValueError(f"not a time of day in {text!r}")
    start, end = sh * 60 + sm, eh * 60 + em
    if start >= end:
        raise ValueError(f"a window runs forward within one day (no wrap past midnight): {text!r}")
    return Window(start, end)


DEFAULT_WINDOW = Window(8 * 60, 21 * 60)
STATE_WINDOW = Window(8 * 60, 20 * 60)
DEFAULT_STATE_WINDOWS: Mapping[str, Window] = MappingProxyType(
    {state: STATE_WINDOW for state in AREA_CODES}
)


@dataclass(frozen=True, slots=True)
class QuietHoursRule:
    """What applies to sends from one business number (or the deployment's default)."""

    enabled: bool = False
    window: Window = DEFAULT_WINDOW
    states: Mapping[str, Window] = field(default_factory=lambda: DEFAULT_STATE_WINDOWS)
    """Windows of states with their own law, by USPS code: a recipient there gets the part of
    ``window`` inside its state's window (a state narrows, never widens)."""

    def window_for(self, state: str | None) -> Window:
        state_window = self.states.get(state) if state is not None else None
        return self.window if state_window is None else self.window & state_window


@dataclass(frozen=True, slots=True)
class QuietHours:
    """The quiet-hours configuration: a default rule, per-business-number rules, and the zone
    that stands for an unknown one (None: refuse when the zone is unknown)."""

    rule: QuietHoursRule = field(default_factory=QuietHoursRule)
    numbers: Mapping[str, QuietHoursRule] = field(default_factory=dict)
    """Canonical business key (number or ``MG…`` service) -> its own rule."""
    fallback_zone: str | None = None
    active: bool = field(init=False, default=False)
    """Whether any send can be subject to quiet hours (read on every send: kept, not
    computed)."""

    def __post_init__(self) -> None:
        active = self.rule.enabled or any(r.enabled for r in self.numbers.values())
        object.__setattr__(self, "active", active)

    def rule_for(self, sender_keys: Sequence[str]) -> QuietHoursRule:
        """The rule of the first sender key that has its own (number before service)."""
        for key in sender_keys:
            rule = self.numbers.get(key)
            if rule is not None:
                return rule
        return self.rule


@dataclass(frozen=True, slots=True)
class QuietHoursDecision:
    allowed: bool
    window: Window
    zones: tuple[str, ...]
    """The zones the window was checked in (empty: unknown, and no fallback)."""

    def explain(self) -> str:
        where = ", ".join(self.zones) if self.zones else "an unknown time zone"
        return f"outside the recipient's sending hours ({self.window} local, {where})"


@lru_cache(maxsize=4096)
def zones_for(number: str) -> tuple[str, ...]:
    """The time zones a canonical customer key may be in, sorted; ``()`` when unknown."""
    digits = number.rpartition(":")[2]
    try:
        parsed = phonenumbers.parse(digits)
    except phonenumbers.NumberParseException:
        return ()
    zones = {z for z in phone_timezone.time_zones_for_number(parsed) if z != UNKNOWN_ZONE}
    if digits.startswith("+1") and zones:
        zones.update(EXTRA_ZONES.get(digits[2:5], ()))
    return tuple(sorted(zones))


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def minute_of_day(zone: str, now: _dt.datetime) -> int:
    """Local minutes after midnight in ``zone`` at the aware instant ``now``."""
    local = now.astimezone(_zone(zone))
    return local.hour * 60 + local.minute


def admits(window: Window, zones: Sequence[str], now: _dt.datetime) -> bool:
    """Whether ``now`` is inside ``window`` in every one of ``zones`` (never, for no zone)."""
    return bool(zones) and all(window.admits(minute_of_day(z, now)) for z in zones)


def decide_quiet_hours(
    rule: QuietHoursRule,
    to_key: str,
    state: str | None,
    now: _dt.datetime,
    fallback_zone: str | None = None,
) -> QuietHoursDecision:
    """Whether a marketing send to ``to_key`` (in ``state``, see :func:`policy.us_states.
    state_of`) may go out at the aware instant ``now`` under ``rule``."""
    window = rule.window_for(state)
    zones = zones_for(to_key)
    if not zones and fallback_zone is not None:
        zones = (fallback_zone,)
    if not rule.enabled:
        return QuietHoursDecision(True, window, zones)
    return QuietHoursDecision(admits(window, zones, now), window, zones)


# ---- configuration (plain values from TOML) ------------------------------------------------


def quiet_hours_from_config(raw: Any) -> QuietHours:
    """The ``[quiet_hours]`` table (or a boolean: on with the defaults) as :class:`QuietHours`.
    Raises ``ValueError`` naming the bad entry. Business keys in ``numbers`` must already be
    canonical (the shell canonicalises them)."""
    if isinstance(raw, bool | str):
        return QuietHours(QuietHoursRule(enabled=config_flag(raw)))
    if not isinstance(raw, Mapping):
        raise ValueError("quiet_hours must be a table (or true/false)")
    known_keys(raw, {"enabled", "window", "states", "numbers", "fallback_zone"}, "quiet_hours")
    rule = _rule(raw, QuietHoursRule(enabled=False), "quiet_hours")
    numbers_raw = raw.get("numbers", {})
    if not isinstance(numbers_raw, Mapping):
        raise ValueError("quiet_hours.numbers must be a table of business number = { … }")
    numbers: dict[str, QuietHoursRule] = {}
    for key, table in numbers_raw.items():
        where = f"quiet_hours.numbers.{key!r}"
        if not isinstance(table, Mapping):
            raise ValueError(f"{where} must be a table")
        known_keys(table, {"enabled", "window", "states"}, where)
        # A number's own table inherits what it does not say; naming it turns it on.
        numbers[str(key)] = _rule(table, replace(rule, enabled=True), where)
    fallback = raw.get("fallback_zone")
    if fallback is not None:
        fallback = str(fallback)
        try:
            _zone(fallback)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"quiet_hours.fallback_zone {fallback!r} is not a time zone") from None
    return QuietHours(rule, numbers, fallback)


def _rule(table: Mapping[str, Any], base: QuietHoursRule, where: str) -> QuietHoursRule:
    rule = base
    if "enabled" in table:
        rule = replace(rule, enabled=config_flag(table["enabled"]))
    if "window" in table:
        rule = replace(rule, window=parse_window(table["window"]))
    if "states" in table:
        states = table["states"]
        if not isinstance(states, Mapping):
            raise ValueError(f'{where}.states must be a table of STATE = "HH:MM-HH:MM"')
        merged = dict(rule.states)
        for state, window in states.items():
            merged[str(state).upper()] = parse_window(window)
        rule = replace(rule, states=MappingProxyType(merged))
    return rule


def known_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(unknown)}")


def config_flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, not {raw!r}")
