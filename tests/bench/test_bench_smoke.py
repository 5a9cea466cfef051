"""The benchmarks run in CI as short smokes, so they cannot rot (figures come from full runs)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.bench import run_bench
from tests.support.ci import in_ci


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The PostgreSQL the benchmarks' PostgreSQL runs use (a throwaway cluster where none
    answers; failed in CI where none can be had)."""
    with postgres.server_or_skip() as url:
        yield url


@pytest.mark.parametrize(
    ("script", "arguments", "on_postgres"),
    [
        ("consents_io.py", ["--smoke"], False),
        ("consents_io.py", ["--smoke"], True),
        ("store_lookup.py", ["--smoke"], True),
        ("send_path.py", ["--smoke"], False),
        ("suppression_import.py", ["--rows", "2000"], True),
        ("suppression_loop_pause.py", ["2000"], False),
    ],
)
def test_bench_smoke(
    script: str, arguments: list[str], on_postgres: bool, request: pytest.FixtureRequest
) -> None:
    """Each script on a few rows; those with a PostgreSQL run are given the tests' server."""
    postgres_option = ["--postgres", request.getfixturevalue("postgres_url")] if on_postgres else []
    run_bench(script, *arguments, *postgres_option)


README_BUDGET_MIB = {"consent_mib": 670, "with_suppression_lists_mib": 760}
"""The consent cache's memory for ``cache_size = 1000000`` that the README documents."""


def test_cache_memory_stays_within_the_documented_budget(tmp_path: Path) -> None:
    """bench/cache_memory.py on 20,000 customers, held to the README's budget for 10⁶ entries. The
    small run's figures come out a few per cent under the full run's, so this catches an entry
    grown by more than that (a field added to the cached values, another table per entry), not
    every byte."""
    out = tmp_path / "memory.json"
    run_bench("cache_memory.py", "--smoke", "--json", str(out))
    measured = json.loads(out.read_text(encoding="utf-8"))["budget_mib"]
    for name, documented in README_BUDGET_MIB.items():
        assert measured[name] <= documented, (name, measured)


def test_send_instructions_smoke(tmp_path: Path) -> None:
    """bench/send_instructions.py counts an allowed send through Stopgate and through the bare
    proxy, a STOP webhook of each dialect, and an idle second (a few each: the figures are not
    the point, the script running is)."""
    if shutil.which("valgrind") is None:
        if in_ci():
            pytest.fail("valgrind is missing in CI (scripts/system-deps installs it)")
        pytest.skip("valgrind is not installed (scripts/system-deps installs it)")
    out = tmp_path / "instructions.json"
    run_bench(
        "send_instructions.py",
        *("--sends", "20", "--scenarios", "ipbsr", "--idle-seconds", "1", "--json", str(out)),
        timeout=600,
    )
    figures = json.loads(out.read_text())["this tree"]
    assert all(figures[scenario] > 0 for scenario in "ipbsr")
    assert all(f"{scenario}-net" in figures for scenario in "pbsr")


def test_bench_suite_quick(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every scenario of bench/suite.py runs end to end and answers as expected (``--quick``:
    1 s runs, 30,000 records; two rounds of the closed-loop ones, two paired cycles). In CI
    nothing may be skipped: scripts/system-deps installs nginx and wrk, and (e) runs on the tests'
    PostgreSQL."""
    nginx = shutil.which("nginx") or Path("/usr/sbin/nginx").exists()
    if not (nginx and shutil.which("wrk")) and not in_ci():
        pytest.skip("nginx or wrk missing (make system-deps installs them)")
    try:
        postgres_url = request.getfixturevalue("postgres_url")
    except pytest.skip.Exception:
        postgres_url = ""  # outside CI, with no PostgreSQL: (e) skips it, the rest still runs
    out = tmp_path / "suite.json"
    run_bench(
        "suite.py",
        *("--quick", "--rounds", "2", "--json", str(out), "--postgres", postgres_url),
        *(["--require-all"] if in_ci() else []),
    )
    document = json.loads(out.read_text(encoding="utf-8"))
    scenarios = document["scenarios"]
    expected = {"a", "b", "c", "d-twilio", "d-ringcentral", "d-twilio-footer"}
    expected |= {"d-ringcentral-footer", "e-sqlite", "e-postgresql", "f", "g"}
    expected |= {"ol-direct", "ol-stopgate"}
    assert set(scenarios) == expected
    for key, scenario in scenarios.items():
        if scenario["skipped"]:
            continue
        assert scenario["rps"] > 0, key
        assert scenario["ratio_to_b"]["rps"] is not None, key
        assert scenario["ratio_to_c"]["rps"] is not None, key
        assert scenario["cpu_us_per_request"] > 0, key
        assert scenario["peak_rss_mib"] > 0, key
    # A cold cache is cold: every send of (e) read the store.
    for key in ("e-sqlite", "e-postgresql"):
        if not scenarios[key]["skipped"]:
            assert scenarios[key]["details"]["cache_miss_ratio"] == 1.0, key
    assert scenarios["g"]["details"]["confirmed"] == scenarios["g"]["details"]["webhooks"]
    assert "stop_webhook_p99_ms" in document["targets"]
    # Two rounds of the closed-loop scenarios, with their medians kept beside the judged
    # ratios, which come from the paired measurement (two cycles with --quick).
    rounds = document["rounds"]
    assert len(rounds) == 2
    paired = document["paired"]
    assert paired["cycles"] == 2
    for name, (top, bottom) in {
        "stopgate_over_floor_rps": ("d-twilio", "c"),
        "stopgate_ringcentral_over_floor_rps": ("d-ringcentral", "c"),
        "workers2_over_nginx_proxy_rps": ("f", "b"),
    }.items():
        values = sorted(r["targets"][name] for r in rounds)
        assert document["round_medians"][name] == pytest.approx(sum(values) / 2), name
        assert document["targets"][name] == pytest.approx(
            paired[top]["rps"] / paired[bottom]["rps"]
        ), name
    for key in ("b", "c", "d-twilio", "d-ringcentral", "f"):
        assert len(paired[key]["per_cycle_rps"]) == 2, key
        assert paired[key]["requests"] > 0, key
        assert paired[key]["cpu_us_per_request"] > 0, key
    assert document["table_round"] in (1, 2)
