"""The blocked-send metrics' ``reason`` labels: a fixed set, every member present at 0 from the
first scrape (so ``rate()`` sees a first quiet-hours or suppression block), and never more."""

from __future__ import annotations

import re

from gateway.metrics import block_reasons
from policy.categories import RULE_REASONS
from policy.consent import BlockReason
from tests.conftest import BUSINESS, RC_BATCH, RC_SEND, Gateway
from tests.service.test_sending_rules import (  # noqa: F401
    AT_22_NEW_YORK,
    AT_NOON_NEW_YORK,
    CAPS,
    MIAMI,
    NEW_YORK,
    QUIET,
    TULSA,
    Build,
    Time,
    build,
    rc_sms,
)

_SAMPLE = re.compile(r"^(stopgate_\w+)\{(.*)\} (\S+)$")


async def series(gateway: Gateway, name: str) -> dict[tuple[str, str, str], float]:
    """(dialect, decision, reason) -> value of every series of ``name`` (decision '' when the
    metric has none)."""
    text = await (await gateway.client.get("/metrics")).text()
    found: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match[1] != name:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
        key = (labels["dialect"], labels.get("decision", ""), labels["reason"])
        found[key] = float(match[3])
    return found


async def blocked_recipients(gateway: Gateway) -> dict[tuple[str, str], float]:
    """(dialect, reason) -> value of ``stopgate_blocked_recipients_total``."""
    found = await series(gateway, "stopgate_blocked_recipients_total")
    return {(dialect, reason): value for (dialect, _, reason), value in found.items()}


async def blocked_sends(gateway: Gateway) -> dict[tuple[str, str], float]:
    """(dialect, reason) -> value of ``stopgate_sends_total{decision="blocked"}``."""
    found = await series(gateway, "stopgate_sends_total")
    return {(d, r): v for (d, decision, r), v in found.items() if decision == "blocked"}


def increase(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    """The series that went up, by how much (every series is present from the start)."""
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


def test_the_reason_set_is_the_consent_reasons_and_the_sending_rules() -> None:
    reasons = block_reasons()
    assert len(set(reasons)) == len(reasons)
    assert set(reasons) == {r.value for r in BlockReason} | set(RULE_REASONS)
    for new in ("quiet-hours", "frequency-cap", "opt-out-brand", "suppressed", "no-opt-in"):
        assert new in reasons


async def test_every_block_reason_exists_at_zero_from_the_start(gateway: Gateway) -> None:
    expected = {(d, r) for d in ("ringcentral", "twilio") for r in block_reasons()}
    recipients = await series(gateway, "stopgate_blocked_recipients_total")
    assert {(d, r) for d, _, r in recipients} == expected
    assert set(recipients.values()) == {0.0}
    sends = await series(gateway, "stopgate_sends_total")
    blocked = {(d, r): v for (d, decision, r), v in sends.items() if decision == "blocked"}
    assert set(blocked) == expected
    assert set(blocked.values()) == {0.0}


async def test_a_block_counts_in_its_series_and_adds_no_other(build: Build) -> None:  # noqa: F811
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=QUIET)
    before = set(await series(gateway, "stopgate_blocked_recipients_total"))
    await gateway.opt_out(to="+12125550199")
    assert (await gateway.twilio_send(NEW_YORK)).status == 400
    assert (await gateway.twilio_send("+12125550199")).status == 400
    after = await series(gateway, "stopgate_blocked_recipients_total")
    assert set(after) == before
    assert after[("twilio", "", "quiet-hours")] == 1
    assert after[("twilio", "", "opt-out")] == 1
    assert sum(after.values()) == 2


async def test_quiet_hours_count_every_refused_recipient(build: Build) -> None:  # noqa: F811
    gateway = await build(Time(AT_22_NEW_YORK), quiet_hours=QUIET)
    token = await gateway.rc_token()
    recipients, sends = await blocked_recipients(gateway), await blocked_sends(gateway)
    assert (await gateway.rc_post(RC_SEND, rc_sms(NEW_YORK, MIAMI), token)).status == 400
    assert (await gateway.twilio_send(NEW_YORK)).status == 400
    assert increase(recipients, await blocked_recipients(gateway)) == {
        ("ringcentral", "quiet-hours"): 2,
        ("twilio", "quiet-hours"): 1,
    }
    assert increase(sends, await blocked_sends(gateway)) == {
        ("ringcentral", "quiet-hours"): 1,
        ("twilio", "quiet-hours"): 1,
    }


async def test_frequency_caps_count_every_refused_recipient(build: Build) -> None:  # noqa: F811
    gateway = await build(Time(AT_NOON_NEW_YORK), frequency_caps=CAPS)
    token = await gateway.rc_token()
    for _ in range(3):
        assert (await gateway.rc_post(RC_SEND, rc_sms(MIAMI, TULSA), token)).status == 200
    recipients, sends = await blocked_recipients(gateway), await blocked_sends(gateway)
    assert (await gateway.rc_post(RC_SEND, rc_sms(MIAMI, TULSA), token)).status == 400
    batch = {"from": BUSINESS, "text": "Sale", "messages": [{"to": [MIAMI]}, {"to": [NEW_YORK]}]}
    assert (await gateway.rc_post(RC_BATCH, batch, token)).status == 200  # one dropped
    assert (await gateway.twilio_send(TULSA)).status == 400
    assert increase(recipients, await blocked_recipients(gateway)) == {
        ("ringcentral", "frequency-cap"): 3,
        ("twilio", "frequency-cap"): 1,
    }
    # A batch that drops a recipient is a partial send, not a blocked one.
    assert increase(sends, await blocked_sends(gateway)) == {
        ("ringcentral", "frequency-cap"): 1,
        ("twilio", "frequency-cap"): 1,
    }
