"""``stopgate consents import / export / check`` as a user runs them (real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stopgate(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--store", store],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "STOPGATE_LOG_LEVEL": "WARNING"},
    )


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_import_api_layout_then_check_explains(tmp_path: Path, store: str) -> None:
    csv = tmp_path / "optouts.csv"
    csv.write_text(
        "FROM,TO,STATUS,SOURCE\n"
        "(650) 555-0100,650-555-0111,OptOut,Api\n"
        "*,+16505550112,OptOut,Recipient\n"
        "+16505550100,+16505550113,OptIn,Api\n"
    )
    result = stopgate("consents", "import", str(csv), store=store)
    assert result.returncode == 0, result.stderr
    assert "imported 3 records" in result.stdout
    check = stopgate("consents", "check", "+16505550100", "(650) 555-0111", store=store)
    assert check.returncode == 0, check.stderr
    assert "blocked (opt-out)" in check.stdout
    assert "OptOut" in check.stdout
    wildcard = stopgate("consents", "check", "+16505550199", "+16505550112", store=store)
    assert "blocked (opt-out-all)" in wildcard.stdout
    free = stopgate("consents", "check", "+16505550100", "+16505550199", store=store)
    assert "allowed" in free.stdout and "default" in free.stdout


def test_import_portal_layout_with_company_coverage(tmp_path: Path, store: str) -> None:
    csv = tmp_path / "portal.csv"
    csv.write_text(
        "Internal Party Number,External Party Number,Consent Status,Source,Coverage,"
        "Campaign Type,Notes,Last Modified Time\n"
        "+16505550100,+16505550120,Opted Out,Recipient,Company,Marketing,said stop,"
        "2025-05-12T22:21:03.891149Z\n"
        "+16505550100,+16505550121,Opted Out,Api,Number,Marketing,,\n"
    )
    result = stopgate("consents", "import", str(csv), store=store)
    assert result.returncode == 0, result.stderr
    any_sender = stopgate("consents", "check", "+16505550177", "+16505550120", store=store)
    assert "opt-out-all" in any_sender.stdout
    assert "2025-05-12T22:21:03.891149Z" in any_sender.stdout


def test_broken_lines_are_reported_by_number_and_good_lines_load(
    tmp_path: Path, store: str
) -> None:
    csv = tmp_path / "mixed.csv"
    csv.write_text(
        "FROM,TO,STATUS,SOURCE\n"
        "+16505550100,+16505550111,OptOut,Api\n"
        "+16505550100,+1555,OptOut,Api\n"
        "+16505550100,+16505550112,Perhaps,Api\n"
        "+16505550100,+16505550113,OptOut,Api\n"
    )
    result = stopgate("consents", "import", str(csv), store=store)
    assert result.returncode == 1
    assert "line 3:" in result.stderr and "too-short" in result.stderr
    assert "line 4:" in result.stderr and "Perhaps" in result.stderr
    assert "imported 2 records" in result.stdout


def test_export_reimports_to_the_same_state(tmp_path: Path, store: str) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "FROM,TO,STATUS,SOURCE\n"
        + "".join(f"+16505550100,+1650555{n:04d},OptOut,Api\n" for n in range(2000, 2050))
        + "*,+16505550199,OptOut,Recipient\n"
    )
    assert stopgate("consents", "import", str(source), store=store).returncode == 0
    exported = tmp_path / "out.csv"
    assert stopgate("consents", "export", "-o", str(exported), store=store).returncode == 0
    lines = exported.read_text().splitlines()
    assert lines[0].startswith("FROM,TO,STATUS,SOURCE")
    assert len(lines) == 52
    second = f"sqlite:///{tmp_path / 'second.db'}"
    assert stopgate("consents", "import", str(exported), store=second).returncode == 0
    again = tmp_path / "again.csv"
    assert stopgate("consents", "export", "-o", str(again), store=second).returncode == 0
    assert again.read_text() == exported.read_text()


def test_unreadable_file_and_bad_numbers_are_clear_errors(tmp_path: Path, store: str) -> None:
    missing = stopgate("consents", "import", str(tmp_path / "nope.csv"), store=store)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    bad = stopgate("consents", "check", "+16505550100", "not a number", store=store)
    assert bad.returncode == 2 and "refused" in bad.stderr


def test_history_lists_every_change_of_a_customer(tmp_path: Path, store: str) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text(
        "FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME\n"
        "+16505550100,+16505550111,OptOut,Recipient,2025-01-01T00:00:00Z\n"
        "+16505550100,+16505550111,OptIn,Api,2025-02-01T00:00:00Z\n"
    )
    assert stopgate("consents", "import", str(csv), store=store).returncode == 0
    result = stopgate("consents", "history", "(650) 555-0111", store=store)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "history of +16505550111: 2 changes"
    assert "OptOut" in lines[1] and "Recipient" in lines[1]
    assert "OptOut -> OptIn" in lines[2]


def test_rows_dated_in_the_future_are_rejected(tmp_path: Path, store: str) -> None:
    csv = tmp_path / "future.csv"
    csv.write_text(
        "FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME\n"
        "+16505550100,+16505550111,OptIn,Api,2999-01-01T00:00:00Z\n"
        "+16505550100,+16505550112,OptOut,Api,2025-01-01T00:00:00Z\n"
    )
    result = stopgate("consents", "import", str(csv), store=store)
    assert result.returncode == 1
    assert "line 2:" in result.stderr and "future" in result.stderr
    assert "imported 1 records" in result.stdout
