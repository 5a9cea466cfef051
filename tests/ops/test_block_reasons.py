"""The block reasons the gateway counts are the ones the dashboard and the operations guide
name (so a new reason cannot reach the metrics unseen by the people reading them)."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.metrics import block_reasons

ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_shows_blocks_by_reason_naming_every_reason() -> None:
    document = json.loads((ROOT / "grafana/dashboards/stopgate.json").read_text(encoding="utf-8"))
    panels = [p for p in document["panels"] if "by reason" in p["title"]]
    assert len(panels) == 2
    for panel in panels:
        [target] = panel["targets"]
        assert target["expr"].startswith("sum by (reason) (")
        assert "stopgate_blocked_recipients_total" in target["expr"]
        for reason in block_reasons():
            assert reason in panel["description"], (panel["title"], reason)


def test_the_operations_guide_lists_every_reason() -> None:
    guide = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in guide.splitlines()
        if line.startswith("| `") and line.count("|") == 3
    }
    assert set(block_reasons()) <= rows


def test_the_readme_gives_every_reason_its_codes_in_both_dialects() -> None:
    from gateway.dialects.ringcentral import _RESTRICTED_CODES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    refusals = readme[readme.index("### Refusals") : readme.index("### Footer")]
    rows = {
        line.split("|")[1].strip(): line for line in refusals.splitlines() if line.startswith("|")
    }
    for reason in block_reasons():
        row = rows[f"`blocked; reason={reason}`"]
        if reason in _RESTRICTED_CODES:
            assert "30007" in row and _RESTRICTED_CODES[reason] in row, reason
        else:
            assert "21610" in row and "SMS-RC-413" in row, reason
