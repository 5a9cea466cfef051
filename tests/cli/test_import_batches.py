"""An import bigger than one batch (written while the next one is read) keeps file order:
newest wins across batches, history in order, rejected lines named, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import IMPORT_BATCH
from tests.cli.test_consents_cli import stopgate
from tests.support import postgres

PAIR_KEPT = "+16505557001"
"""Opted out in the first batch; an older OptIn in the last batch must not replace it."""
PAIR_CHANGED = "+16505557002"
"""Opted in in the first batch, opted out (newer) in the last one."""


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'import.db'}"
        return
    with postgres.server_or_skip() as url, postgres.schema(url) as schema_url:
        yield schema_url


def test_an_import_of_several_batches_keeps_file_order(tmp_path: Path, store: str) -> None:
    rows = 2 * IMPORT_BATCH + 3_456
    lines = ["FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME"]
    lines.append(f"+16505550100,{PAIR_KEPT},OptOut,Recipient,2025-03-01T00:00:00Z")
    lines.append(f"(650) 555-0100,{PAIR_CHANGED},OptIn,Api,2025-01-01T00:00:00Z")
    bad_lines = []
    for n in range(rows):
        if n % 5_000 == 17:
            lines.append("+16505550100,not a number,OptOut,Api,")
            bad_lines.append(len(lines))
        # E.164 (the fast path) and national formats (the full parser) mixed.
        to = f"+1201{n:07d}" if n % 2 else f"(201) {n // 10_000:03d}-{n % 10_000:04d}"
        lines.append(f"+16505550100,{to},{'OptOut' if n % 3 else 'OptIn'},Api,")
    lines.append(f"+16505550100,{PAIR_KEPT},OptIn,Api,2025-02-01T00:00:00Z")
    lines.append(f"+16505550100,{PAIR_CHANGED},OptOut,Api,2025-04-01T00:00:00Z")
    source = tmp_path / "big.csv"
    source.write_text("\n".join(lines) + "\n")

    result = stopgate("consents", "import", str(source), store=store)

    assert result.returncode == 1  # some lines were rejected
    assert result.stdout.strip() == (
        f"imported {rows + 3} records, 1 older than what the store holds, {len(bad_lines)} rejected"
    )
    for line in bad_lines:
        assert f"line {line}:" in result.stderr
    kept = stopgate("consents", "history", PAIR_KEPT, store=store)
    assert kept.stdout.splitlines()[0] == f"history of {PAIR_KEPT}: 1 changes"
    changed = stopgate("consents", "history", PAIR_CHANGED, store=store).stdout.splitlines()
    assert changed[0] == f"history of {PAIR_CHANGED}: 2 changes"
    assert "OptIn -> OptOut" in changed[2]
    check = stopgate("consents", "check", "+16505550100", "+12010000005", store=store)
    assert "blocked (opt-out)" in check.stdout
    exported = tmp_path / "out.csv"
    assert stopgate("consents", "export", "-o", str(exported), store=store).returncode == 0
    assert exported.read_text().count("\n") == rows + 2 + 1
