"""``stopgate consents import`` given a file no store could keep as it is: bytes that are not
UTF-8, NUL characters, a quote left open. Each bad row is rejected by its line number and
the good rows are imported, on SQLite and on PostgreSQL (which refuses NUL in text: before,
one such note failed the whole import there, and an undecodable byte aborted it on both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_consents_cli import stopgate
from tests.support import postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    with postgres.server_or_skip() as base, postgres.schema(base) as url:
        yield url


def test_rows_no_store_can_keep_are_rejected_by_line(tmp_path: Path, store: str) -> None:
    csv = tmp_path / "hostile.csv"
    csv.write_bytes(
        b"from,to,status,note\r\n"
        b"+16505550100,+16505550111,OptOut,fine\r\n"
        b"+16505550100,+16505550112,OptOut,a NUL \x00 here\r\n"
        b"+16505550100,+16505550113,OptOut,latin-1 \xe9t\xe9\r\n"
        b"+16505550100,+16505550114,OptOut,\xff\xfe\r\n"
        b'+16505550100,+16505550115,OptOut,"quoted, fine"\r\n'
        b'+16505550100,+16505550116,OptOut,"torn quote\r\n'
    )
    result = stopgate("consents", "import", str(csv), store=store)
    assert "Traceback" not in result.stderr, result.stderr
    # The torn quote runs to the end of the file: one more row, its note holding the rest.
    assert "imported 3 records" in result.stdout, (result.stdout, result.stderr)
    for line in (3, 4, 5):
        assert f"line {line}: the row holds a NUL or bytes that are not UTF-8" in result.stderr
    assert result.returncode == 1  # some rows were rejected
    for customer in ("+16505550111", "+16505550115", "+16505550116"):
        check = stopgate("consents", "check", "+16505550100", customer, store=store)
        assert "blocked" in check.stdout, check.stdout
    for customer in ("+16505550112", "+16505550113", "+16505550114"):
        check = stopgate("consents", "check", "+16505550100", customer, store=store)
        assert "allowed" in check.stdout, check.stdout
