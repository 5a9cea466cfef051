"""Running a ``bench/`` script as its CI smoke does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(
    script: str, *arguments: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``bench/SCRIPT ARGUMENTS`` on this interpreter, from the repository's root; the test
    fails, with the end of the script's output, unless it exits 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done
