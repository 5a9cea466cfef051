"""``bench/soak.py`` as a 10-second CI smoke (the 10-minute soak's figures are in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke(tmp_path: Path) -> None:
    result = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            *("--duration", "10", "--rate", "20", "--stop-rate", "2", "--customers", "400"),
            *("--json", str(result)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(result.read_text())
    assert figures["sends"] == 200
    assert figures["stops_acknowledged"] == 20
    assert (figures["sent_after_stop"], figures["lost_stops"], figures["duplicated_sends"]) == (
        0,
        0,
        0,
    )
    assert figures["delivered_sends"] == figures["forwarded_answers"]
