"""bench/upstream_client.py runs in CI as a short smoke, so it cannot rot."""

from __future__ import annotations

from tests.support.bench import run_bench


def test_upstream_client_bench_smoke() -> None:
    done = run_bench("upstream_client.py", "--smoke")
    assert "lean ÷ aiohttp" in done.stdout
