"""Quiet hours: zones, state windows, DST edges, the strictest zone, unknown zones; the area-code
table of the states with their own rules; and properties of the window check."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import geocoder

from policy.quiet_hours import (
    DEFAULT_WINDOW,
    QuietHours,
    QuietHoursRule,
    Window,
    admits,
    decide_quiet_hours,
    parse_window,
    quiet_hours_from_config,
    zones_for,
)
from policy.us_states import AREA_CODES, state_of

ON = QuietHoursRule(enabled=True)
UTC = dt.UTC

NEW_YORK = "+12125550100"
CHICAGO = "+13125550100"  # Illinois
DALLAS = "+12145550100"  # Texas, Central, no state rule
DENVER = "+13035550100"
PHOENIX = "+16025550100"
LOS_ANGELES = "+12135550100"
ALASKA = "+19075550100"  # Anchorage and Adak
HONOLULU = "+18085550100"
BOISE = "+12085550100"  # Idaho: Mountain and Pacific
MIAMI = "+13055550100"  # FL
PENSACOLA = "+18505550100"  # FL panhandle: Eastern and (added) Central
TULSA = "+19185550100"  # OK
BALTIMORE = "+14105550100"  # MD
UNKNOWN = "+12425550100"  # no zone in the metadata


def at(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def allowed(to_key: str, now: dt.datetime, rule: QuietHoursRule = ON) -> bool:
    return decide_quiet_hours(rule, to_key, state_of(to_key), now).allowed


@pytest.mark.parametrize(
    ("to_key", "now", "expected"),
    [
        # New York, the day before DST starts (EST, UTC-5) and the day after (EDT, UTC-4).
        (NEW_YORK, at(2026, 3, 7, 12, 59), False),  # 07:59 EST
        (NEW_YORK, at(2026, 3, 7, 13, 0), True),  # 08:00 EST
        (NEW_YORK, at(2026, 3, 9, 11, 59), False),  # 07:59 EDT
        (NEW_YORK, at(2026, 3, 9, 12, 0), True),  # 08:00 EDT
        (NEW_YORK, at(2026, 3, 9, 12, 30), True),  # the same UTC time as 07:30 EST on the 7th
        (NEW_YORK, at(2026, 3, 7, 12, 30), False),
        # The night DST starts: 02:00 EST jumps to 03:00 EDT; still night either way.
        (NEW_YORK, at(2026, 3, 8, 7, 0), False),  # 03:00 EDT
        (NEW_YORK, at(2026, 3, 8, 12, 0), True),  # 08:00 EDT on the first DST day
        # DST ends 2026-11-01 (02:00 EDT -> 01:00 EST): the end of the window moves in UTC.
        (NEW_YORK, at(2026, 11, 1, 0, 59, 59), True),  # 20:59:59 EDT on Oct 31
        (NEW_YORK, at(2026, 11, 1, 1, 0), False),  # 21:00 EDT
        (NEW_YORK, at(2026, 11, 1, 5, 30), False),  # 01:30 EST, the repeated hour's second run
        (NEW_YORK, at(2026, 11, 2, 1, 59), True),  # 20:59 EST on Nov 1
        (NEW_YORK, at(2026, 11, 2, 2, 0), False),  # 21:00 EST
        # Chicago (CDT UTC-5 in July, CST UTC-6 in January).
        (CHICAGO, at(2026, 7, 1, 12, 59), False),
        (CHICAGO, at(2026, 7, 1, 13, 0), True),
        (CHICAGO, at(2026, 1, 15, 13, 59), False),
        (CHICAGO, at(2026, 1, 15, 14, 0), True),
        (CHICAGO, at(2026, 7, 2, 1, 59), True),  # 20:59 CDT
        (CHICAGO, at(2026, 7, 2, 2, 0), False),  # 21:00 CDT
        # Denver keeps DST, Phoenix does not: one hour apart in July, the same in January.
        (DENVER, at(2026, 7, 1, 14, 0), True),  # 08:00 MDT
        (PHOENIX, at(2026, 7, 1, 14, 0), False),  # 07:00 MST
        (PHOENIX, at(2026, 7, 1, 15, 0), True),
        (DENVER, at(2026, 1, 15, 14, 59), False),
        (PHOENIX, at(2026, 1, 15, 14, 59), False),
        (DENVER, at(2026, 1, 15, 15, 0), True),
        (PHOENIX, at(2026, 1, 15, 15, 0), True),
        (PHOENIX, at(2026, 7, 2, 3, 59), True),  # 20:59 MST
        (DENVER, at(2026, 7, 2, 3, 0), False),  # 21:00 MDT
        # Los Angeles (PDT UTC-7 in July, PST UTC-8 in December).
        (LOS_ANGELES, at(2026, 7, 1, 14, 59), False),
        (LOS_ANGELES, at(2026, 7, 1, 15, 0), True),
        (LOS_ANGELES, at(2026, 7, 2, 3, 59), True),
        (LOS_ANGELES, at(2026, 7, 2, 4, 0), False),
        (LOS_ANGELES, at(2026, 12, 1, 15, 59), False),
        (LOS_ANGELES, at(2026, 12, 1, 16, 0), True),
        # Alaska: Anchorage (AKDT UTC-8) and Adak (HDT UTC-9) - both must be inside.
        (ALASKA, at(2026, 7, 1, 16, 30), False),  # 08:30 Anchorage, 07:30 Adak
        (ALASKA, at(2026, 7, 1, 17, 0), True),
        (ALASKA, at(2026, 7, 2, 4, 59), True),  # 20:59 Anchorage
        (ALASKA, at(2026, 7, 2, 5, 0), False),
        # Honolulu: UTC-10 all year.
        (HONOLULU, at(2026, 7, 1, 17, 59), False),
        (HONOLULU, at(2026, 7, 1, 18, 0), True),
        (HONOLULU, at(2026, 1, 1, 18, 0), True),
        (HONOLULU, at(2026, 7, 2, 6, 59), True),
        (HONOLULU, at(2026, 7, 2, 7, 0), False),
        # Idaho spans Mountain and Pacific: starts with Pacific, ends with Mountain.
        (BOISE, at(2026, 7, 1, 14, 30), False),  # 08:30 MDT, 07:30 PDT
        (BOISE, at(2026, 7, 1, 15, 0), True),
        (BOISE, at(2026, 7, 2, 2, 59), True),  # 20:59 MDT
        (BOISE, at(2026, 7, 2, 3, 0), False),  # 21:00 MDT, 20:00 PDT
        # Florida, Oklahoma, Maryland: 08:00-20:00.
        (MIAMI, at(2026, 7, 1, 23, 59), True),  # 19:59 EDT
        (MIAMI, at(2026, 7, 2, 0, 0), False),  # 20:00 EDT
        (NEW_YORK, at(2026, 7, 2, 0, 30), True),  # 20:30 EDT in New York is fine
        (BALTIMORE, at(2026, 7, 2, 0, 0), False),
        (TULSA, at(2026, 7, 2, 0, 59), True),  # 19:59 CDT
        (TULSA, at(2026, 7, 2, 1, 0), False),  # 20:00 CDT
        (DALLAS, at(2026, 7, 2, 1, 30), True),  # 20:30 CDT in Texas is fine
        (TULSA, at(2026, 7, 1, 12, 59), False),  # 07:59 CDT
        # The panhandle is on Central time too: an 08:00 Eastern send is 07:00 there.
        (PENSACOLA, at(2026, 7, 1, 12, 30), False),
        (PENSACOLA, at(2026, 7, 1, 13, 0), True),
        (PENSACOLA, at(2026, 7, 1, 23, 59), True),  # 19:59 EDT
        (PENSACOLA, at(2026, 7, 2, 0, 0), False),
        # Channel addresses are held to their number's zone.
        ("whatsapp:" + NEW_YORK, at(2026, 7, 1, 16, 0), True),
        ("whatsapp:" + NEW_YORK, at(2026, 7, 2, 2, 0), False),
        # Unknown zone: refused at any hour.
        (UNKNOWN, at(2026, 7, 1, 16, 0), False),
        ("messenger:1234567", at(2026, 7, 1, 16, 0), False),
    ],
)
def test_sending_hours(to_key: str, now: dt.datetime, expected: bool) -> None:
    assert allowed(to_key, now) is expected


def test_a_disabled_rule_allows_any_hour() -> None:
    assert allowed(NEW_YORK, at(2026, 7, 1, 7, 0), QuietHoursRule(enabled=False))


def test_an_unknown_zone_uses_the_fallback_zone_when_one_is_configured() -> None:
    decision = decide_quiet_hours(ON, UNKNOWN, None, at(2026, 7, 1, 16, 0), "America/New_York")
    assert decision.allowed and decision.zones == ("America/New_York",)
    late = decide_quiet_hours(ON, UNKNOWN, None, at(2026, 7, 2, 2, 0), "America/New_York")
    assert not late.allowed
    assert "America/New_York" in late.explain()


def test_zones_of_numbers() -> None:
    assert zones_for(NEW_YORK) == ("America/New_York",)
    assert zones_for(ALASKA) == ("America/Adak", "America/Anchorage")
    assert zones_for(PENSACOLA) == ("America/Chicago", "America/New_York")
    assert zones_for(UNKNOWN) == ()
    assert zones_for("messenger:abc") == ()
    assert len(zones_for("+18005550100")) > 10  # toll free: every NANP zone


@pytest.mark.parametrize(
    ("rule_window", "state", "expected"),
    [
        (DEFAULT_WINDOW, None, "08:00-21:00"),
        (DEFAULT_WINDOW, "TX", "08:00-21:00"),
        (DEFAULT_WINDOW, "FL", "08:00-20:00"),
        (parse_window("09:00-18:00"), "FL", "09:00-18:00"),  # a state narrows, never widens
        (parse_window("07:00-22:00"), "MD", "08:00-20:00"),
        (parse_window("20:30-23:00"), "OK", "20:30-20:30"),  # nothing left
    ],
)
def test_state_windows_narrow_the_rule(rule_window: Window, state: str, expected: str) -> None:
    assert str(QuietHoursRule(True, rule_window).window_for(state)) == expected


def test_an_empty_window_admits_nothing() -> None:
    rule = QuietHoursRule(True, parse_window("20:30-23:00"))
    assert not any(allowed(TULSA, at(2026, 7, 1, h), rule) for h in range(24))


@pytest.mark.parametrize(
    "text", ["8-21", "08:00", "21:00-08:00", "08:00-08:00", "25:00-26:00", "08:60-09:00", ""]
)
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"window|time of day"):
        parse_window(text)


def test_windows_as_written() -> None:
    assert parse_window(" 8:05 - 20:30 ") == Window(8 * 60 + 5, 20 * 60 + 30)
    assert parse_window("00:00-24:00") == Window(0, 24 * 60)


def test_configuration_per_business_number() -> None:
    config = quiet_hours_from_config(
        {
            "window": "09:00-21:00",
            "states": {"tx": "09:00-19:00"},
            "numbers": {"+16505550100": {"window": "10:00-18:00"}, "+16505550101": {}},
        }
    )
    assert not config.rule.enabled and config.active
    assert config.rule_for(("+16505550199",)) is config.rule
    number = config.rule_for(("+16505550100", "MG" + "0" * 32))
    assert number.enabled and str(number.window) == "10:00-18:00"
    assert str(number.window_for("TX")) == "10:00-18:00"
    assert str(config.rule_for(("+16505550101",)).window_for("TX")) == "09:00-19:00"
    assert str(config.rule_for(("+16505550101",)).window_for("FL")) == "09:00-20:00"
    assert quiet_hours_from_config(True).rule.enabled
    assert not quiet_hours_from_config("off").active
    assert not QuietHours().active


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"windows": "08:00-21:00"}, "unknown key"),
        ({"numbers": {"+16505550100": {"start": "x"}}}, "unknown key"),
        ({"fallback_zone": "Mars/Olympus_Mons"}, "not a time zone"),
        ({"enabled": "maybe"}, "true or false"),
        ({"states": ["FL"]}, "states must be a table"),
        (["on"], "must be a table"),
    ],
)
def test_bad_configuration_is_refused(raw: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        quiet_hours_from_config(raw)


# ---- the area-code table ------------------------------------------------------------------

_STATE_NAMES = {"FL": "Florida", "OK": "Oklahoma", "MD": "Maryland"}


def _described_state(area_code: int) -> str | None:
    for subscriber in ("2", "5", "7"):
        number = phonenumbers.parse(f"+1{area_code}{subscriber}550100")
        text = geocoder.description_for_number(number, "en")
        for state, name in _STATE_NAMES.items():
            if text == name or text.endswith(f", {state}"):
                return state
    return None


def test_the_area_code_table_agrees_with_the_phonenumbers_geocoder() -> None:
    """Both ways: every area code the geocoder places in FL/OK/MD is in the table, and every
    code in the table is placed there."""
    described = {
        state: {str(code) for code in range(200, 1000) if _described_state(code) == state}
        for state in _STATE_NAMES
    }
    assert described == {state: set(codes) for state, codes in AREA_CODES.items()}


@pytest.mark.parametrize(
    ("key", "state"),
    [
        (MIAMI, "FL"),
        ("whatsapp:" + MIAMI, "FL"),
        (TULSA, "OK"),
        (BALTIMORE, "MD"),
        (NEW_YORK, None),
        ("+443055550100", None),
        ("+1305555010", None),
    ],
)
def test_state_of_a_number(key: str, state: str | None) -> None:
    assert state_of(key) == state


# ---- properties -----------------------------------------------------------------------------

SINGLE_ZONE = [
    (NEW_YORK, "America/New_York"),
    (CHICAGO, "America/Chicago"),
    (DENVER, "America/Denver"),
    (PHOENIX, "America/Phoenix"),
    (LOS_ANGELES, "America/Los_Angeles"),
    (HONOLULU, "Pacific/Honolulu"),
    (MIAMI, "America/New_York"),
    (TULSA, "America/Chicago"),
]
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=st.just(UTC)
)
minutes = st.integers(min_value=0, max_value=24 * 60)
windows = st.tuples(minutes, minutes).map(lambda p: Window(min(p), max(p)))
zone_names = st.sampled_from(
    [
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Phoenix",
        "America/Los_Angeles",
        "America/Anchorage",
        "America/Adak",
        "Pacific/Honolulu",
        "Europe/London",
        "Asia/Kolkata",
    ]
)


@given(st.sampled_from(SINGLE_ZONE), instants)
def test_allowed_exactly_when_the_local_clock_is_inside_the_window(
    number_zone: tuple[str, str], now: dt.datetime
) -> None:
    number, zone = number_zone
    local = now.astimezone(ZoneInfo(zone)).time()
    state = state_of(number)
    end = dt.time(20) if state else dt.time(21)
    assert allowed(number, now) is (dt.time(8) <= local < end)


@given(windows, st.lists(zone_names, min_size=1, max_size=4), instants)
def test_several_zones_allow_exactly_when_every_zone_does(
    window: Window, zones: list[str], now: dt.datetime
) -> None:
    assert admits(window, zones, now) is all(admits(window, [z], now) for z in zones)


@given(windows, windows, st.lists(zone_names, min_size=1, max_size=3), zone_names, instants)
def test_wider_windows_and_fewer_zones_never_allow_less(
    window: Window, other: Window, zones: list[str], extra: str, now: dt.datetime
) -> None:
    narrower = window & other
    if admits(narrower, zones, now):
        assert admits(window, zones, now)
    if admits(window, [*zones, extra], now):
        assert admits(window, zones, now)


@given(windows, st.sampled_from([None, "FL", "OK", "MD", "TX"]), windows)
def test_a_state_window_lies_within_the_rule_window(
    window: Window, state: str | None, state_window: Window
) -> None:
    rule = QuietHoursRule(True, window, {"FL": state_window, "OK": state_window})
    chosen = rule.window_for(state)
    assert (window.start <= chosen.start and chosen.end <= window.end) or chosen.start == chosen.end
