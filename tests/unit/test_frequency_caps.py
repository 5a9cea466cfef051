"""Frequency caps and message categories: which cap applies, the sliding-window count, its
properties, and the configuration of both (through ``load_settings`` too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.errors import ConfigError
from policy.categories import Category, UnknownCategory, category_of, parse_category
from policy.frequency_caps import (
    HOUR_US,
    STATE_CAP,
    Cap,
    FrequencyCaps,
    admits,
    frequency_caps_from_config,
)

DAY = 24 * HOUR_US
MIAMI, TULSA, BALTIMORE, NEW_YORK = "+13055550100", "+19185550100", "+14105550100", "+12125550100"


@pytest.mark.parametrize(
    ("caps", "to_key", "expected"),
    [
        (FrequencyCaps(), MIAMI, None),  # off
        (FrequencyCaps(enabled=True), MIAMI, STATE_CAP),
        (FrequencyCaps(enabled=True), TULSA, STATE_CAP),
        (FrequencyCaps(enabled=True), BALTIMORE, STATE_CAP),
        (FrequencyCaps(enabled=True), "whatsapp:" + MIAMI, STATE_CAP),
        (FrequencyCaps(enabled=True), NEW_YORK, None),  # no cap outside those states
        (FrequencyCaps(enabled=True, default=Cap(5, DAY)), NEW_YORK, Cap(5, DAY)),
        (FrequencyCaps(enabled=True, default=Cap(5, DAY)), MIAMI, STATE_CAP),
        (FrequencyCaps(enabled=True, states={"FL": Cap(1, HOUR_US)}), MIAMI, Cap(1, HOUR_US)),
        (FrequencyCaps(enabled=True, states={"FL": Cap(1, HOUR_US)}), TULSA, None),
    ],
)
def test_which_cap_applies(caps: FrequencyCaps, to_key: str, expected: Cap | None) -> None:
    assert caps.cap_for(to_key) == expected


@pytest.mark.parametrize(
    ("sent", "now", "expected"),
    [
        ([], 0, True),
        ([0, 1], 2, True),
        ([0, 1, 2], 3, False),
        ([0, 1, 2], DAY - 1, False),
        ([0, 1, 2], DAY, True),  # the first left the window exactly one window later
        ([0, 1, 2], DAY + 1, True),
        ([-DAY, -DAY + 1, 5], 10, True),
        ([10, 20, 30], 15, False),  # another gateway's clock ahead of ours still counts
    ],
)
def test_the_sliding_window(sent: list[int], now: int, expected: bool) -> None:
    assert admits(sent, now, Cap(3, DAY)) is expected


times = st.lists(st.integers(min_value=0, max_value=10 * DAY), max_size=40)
caps = st.builds(
    Cap, st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=2 * DAY)
)


@given(times, caps)
def test_counting_greedily_never_exceeds_the_cap_in_any_window(
    arrivals: list[int], cap: Cap
) -> None:
    counted: list[int] = []
    for t in sorted(arrivals):
        if admits(counted, t, cap):
            counted.append(t)
    for t in counted:
        assert sum(1 for u in counted if t - cap.window_us < u <= t) <= cap.count


@given(times, st.integers(min_value=0, max_value=10 * DAY), st.integers(0, 10 * DAY), caps)
def test_one_more_counted_send_never_makes_room(
    sent: list[int], now: int, extra: int, cap: Cap
) -> None:
    if admits([*sent, extra], now, cap):
        assert admits(sent, now, cap)


def test_caps_as_configured() -> None:
    caps = frequency_caps_from_config(
        {
            "enabled": True,
            "default": {"count": 10, "hours": 24},
            "states": {"fl": {"count": 2, "hours": 12}},
        }
    )
    assert caps.cap_for(MIAMI) == Cap(2, 12 * HOUR_US)
    assert caps.cap_for(TULSA) == STATE_CAP
    assert caps.cap_for(NEW_YORK) == Cap(10, DAY)
    assert frequency_caps_from_config(True) == FrequencyCaps(enabled=True)
    assert str(STATE_CAP) == "3 per 24 h"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"default": {"count": 0, "hours": 24}}, "at least 1"),
        ({"default": {"count": 3}}, "whole count"),
        ({"default": {"count": 3, "hours": 24, "per": "x"}}, "unknown key"),
        ({"default": 3}, "must be a table"),
        ({"states": []}, "states must be a table"),
        ({"limit": 3}, "unknown key"),
        (3, "must be a table"),
    ],
)
def test_bad_caps_are_refused(raw: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        frequency_caps_from_config(raw)


# ---- categories ---------------------------------------------------------------------------

CONFIGURED = {"+16505550100": Category.TRANSACTIONAL, "MG" + "a" * 32: Category.MARKETING}


@pytest.mark.parametrize(
    ("header", "senders", "default", "expected"),
    [
        (None, ("+16505550100",), Category.MARKETING, Category.TRANSACTIONAL),
        (None, ("+16505550199", "MG" + "a" * 32), Category.TRANSACTIONAL, Category.MARKETING),
        (None, ("+16505550100", "MG" + "a" * 32), Category.MARKETING, Category.TRANSACTIONAL),
        (None, ("+16505550199",), Category.TRANSACTIONAL, Category.TRANSACTIONAL),
        (None, (), Category.MARKETING, Category.MARKETING),
        ("marketing", ("+16505550100",), Category.TRANSACTIONAL, Category.MARKETING),
        (" Transactional ", ("MG" + "a" * 32,), Category.MARKETING, Category.TRANSACTIONAL),
    ],
)
def test_the_category_of_a_send(
    header: str | None, senders: tuple[str, ...], default: Category, expected: Category
) -> None:
    assert category_of(header, senders, CONFIGURED, default) is expected


@pytest.mark.parametrize("raw", ["promo", "", "marketing,transactional"])
def test_unknown_categories_are_refused(raw: str) -> None:
    with pytest.raises(UnknownCategory, match="marketing, transactional"):
        parse_category(raw)


# ---- settings -----------------------------------------------------------------------------


def test_off_by_default() -> None:
    settings = load_settings(environ={})
    assert not settings.quiet_hours.active
    assert not settings.frequency_caps.enabled
    assert settings.category_default is Category.MARKETING
    assert settings.categories == {}


def test_settings_from_toml_with_numbers_canonicalised(tmp_path: Path) -> None:
    config = tmp_path / "stopgate.toml"
    config.write_text(
        'category_default = "transactional"\n'
        "[categories]\n"
        '"(650) 555-0100" = "marketing"\n'
        '"MGABCDEFABCDEFABCDEFABCDEFABCDEFAB" = "marketing"\n'
        "[quiet_hours]\n"
        "enabled = true\n"
        'fallback_zone = "America/Chicago"\n'
        '[quiet_hours.numbers."1-650-555-0101"]\n'
        'window = "10:00-18:00"\n'
        "[frequency_caps]\n"
        "enabled = true\n"
        "default = { count = 4, hours = 48 }\n"
    )
    settings = load_settings(config_file=str(config), environ={})
    assert settings.category_default is Category.TRANSACTIONAL
    assert settings.categories == {
        "+16505550100": Category.MARKETING,
        "MGabcdefabcdefabcdefabcdefabcdefab": Category.MARKETING,
    }
    assert settings.quiet_hours.rule.enabled
    assert settings.quiet_hours.fallback_zone == "America/Chicago"
    assert str(settings.quiet_hours.numbers["+16505550101"].window) == "10:00-18:00"
    assert settings.frequency_caps.cap_for(NEW_YORK) == Cap(4, 48 * HOUR_US)


def test_switched_on_from_the_environment() -> None:
    settings = load_settings(
        environ={"STOPGATE_QUIET_HOURS": "true", "STOPGATE_FREQUENCY_CAPS": "on"}
    )
    assert settings.quiet_hours.rule.enabled
    assert settings.frequency_caps.cap_for(MIAMI) == STATE_CAP


@pytest.mark.parametrize(
    "toml",
    [
        '[categories]\n"+16505550100" = "promo"\n',
        '[categories]\n"+1 (650) 5" = "marketing"\n',
        'category_default = "bulk"\n',
        '[quiet_hours]\nwindow = "21:00-08:00"\n',
        '[quiet_hours.numbers."+1 650"]\nenabled = true\n',
        "[frequency_caps]\nstates = { FL = { count = -1, hours = 24 } }\n",
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, toml: str) -> None:
    config = tmp_path / "stopgate.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError):
        load_settings(config_file=str(config), environ={})
