"""bench/stop_webhook.py runs in CI as a short smoke, so it cannot rot."""

from __future__ import annotations

import json

from tests.support.bench import run_bench


def test_stop_webhook_bench_smoke() -> None:
    done = run_bench("stop_webhook.py", "--smoke")
    figures = json.loads(done.stdout)
    assert figures["messages"] == 100 and figures["p99_ms"] > 0
