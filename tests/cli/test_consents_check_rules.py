"""``stopgate consents check`` explains quiet hours and frequency caps when they are on: the
recipient's zones and local time against the window, the cap and the sends counted in it
(real processes, a real SQLite store the counts were taken in)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.store import store_from_url
from gateway.store.base import SendSlotRequest
from policy.consent import parse_time
from policy.frequency_caps import HOUR_US
from tests.cli.test_consents_cli import stopgate

BUSINESS = "+16505550100"
MIAMI = "+13055550111"  # Florida: 08:00-20:00, 3 per 24 h
NEW_YORK = "+12125550111"
# 2026-07-01 is EDT (UTC-4).
AT_2030_EDT = "2026-07-02T00:30:00Z"
AT_NOON_EDT = "2026-07-01T16:00:00Z"

RULES = """
[quiet_hours]
enabled = true

[frequency_caps]
enabled = true
"""


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stopgate.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def take_slots(store: str, to_key: str, *times: str) -> None:
    async def run() -> None:
        opened = store_from_url(store)
        await opened.open()
        try:
            for at in times:
                await opened.take_send_slots(
                    [SendSlotRequest(to_key, 3, 24 * HOUR_US)], parse_time(at)
                )
        finally:
            await opened.close()

    asyncio.run(run())


def check(store: str, cfg: str | None, to: str, at: str) -> str:
    extra = ("--config", cfg) if cfg else ()
    done = stopgate("consents", "check", BUSINESS, to, "--at", at, *extra, store=store)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rules_off_say_nothing_of_them(store: str) -> None:
    out = check(store, None, MIAMI, AT_2030_EDT)
    assert "quiet hours" not in out and "frequency cap" not in out and "category" not in out


def test_florida_at_2030_is_outside_its_window(tmp_path: Path, store: str) -> None:
    out = check(store, config(tmp_path, RULES), MIAMI, AT_2030_EDT)
    assert "category: marketing" in out
    [quiet] = [line for line in out.splitlines() if "quiet hours" in line]
    assert "window 08:00-20:00 (FL)" in quiet
    assert "America/New_York 20:30" in quiet
    assert "refused now" in quiet and "outside the recipient's sending hours" in quiet
    [cap] = [line for line in out.splitlines() if "frequency cap" in line]
    assert "3 per 24 h (FL); 0 counted in the window; one more is allowed" in cap


def test_new_york_at_2030_is_inside_and_has_no_cap(tmp_path: Path, store: str) -> None:
    out = check(store, config(tmp_path, RULES), NEW_YORK, AT_2030_EDT)
    assert "window 08:00-21:00 (NY)" in out or "window 08:00-21:00;" in out
    assert "inside the window" in out
    assert "frequency cap: none for this recipient" in out


def test_the_count_in_the_window_is_read_from_the_store(tmp_path: Path, store: str) -> None:
    cfg = config(tmp_path, RULES)
    # Three sends within the day before noon EDT (16:00 UTC); the first (a day earlier) was
    # forgotten when a later one was counted.
    take_slots(store, MIAMI, "2026-06-29T16:00:00Z", "2026-06-30T17:00:00Z", "2026-07-01T09:00:00Z")
    take_slots(store, MIAMI, "2026-07-01T15:00:00Z")
    out = check(store, cfg, MIAMI, AT_NOON_EDT)
    assert "3 counted in the window; refused now: the cap is reached (frequency-cap)" in out
    assert "inside the window" in out
    # By 10:00 UTC the next day only the send at 15:00 UTC is still in the window.
    later = check(store, cfg, MIAMI, "2026-07-02T10:00:00Z")
    assert "1 counted in the window; one more is allowed" in later


def test_a_transactional_number_is_shown_exempt(tmp_path: Path, store: str) -> None:
    cfg = config(tmp_path, RULES + f'\n[categories]\n"{BUSINESS}" = "transactional"\n')
    out = check(store, cfg, MIAMI, AT_2030_EDT)
    assert "category: transactional" in out
    assert "quiet hours (not applied: transactional)" in out


def test_a_bad_time_is_refused(store: str) -> None:
    done = stopgate("consents", "check", BUSINESS, MIAMI, "--at", "soon", store=store)
    assert done.returncode != 0 and "--at" in done.stderr
