"""``bench/soak.py`` as a 10-second CI smoke (the 10-minute soak's figures are in the README)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.bench import run_bench


def test_soak_smoke(tmp_path: Path) -> None:
    result = tmp_path / "soak.json"
    run_bench(
        "soak.py",
        *("--duration", "10", "--rate", "20", "--stop-rate", "2", "--customers", "400"),
        *("--json", str(result)),
    )
    figures = json.loads(result.read_text())
    assert figures["sends"] == 200
    assert figures["stops_acknowledged"] == 20
    assert (figures["sent_after_stop"], figures["lost_stops"], figures["duplicated_sends"]) == (
        0,
        0,
        0,
    )
    assert figures["delivered_sends"] == figures["forwarded_answers"]
