"""``stopgate suppressions import / list / export / drop`` and ``consents check`` with brands,
opt-in mode and suppressions, as a user runs them (real processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_consents_cli import stopgate


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_import_refresh_export_list_and_drop(tmp_path: Path, store: str) -> None:
    first = tmp_path / "dnc.csv"
    first.write_text("Phone,Name\n(650) 555-0111,a\n+16505550112,b\nnot a number,c\n")
    result = stopgate(
        "suppressions", "import", "DNC-2026", str(first), "--kind", "dnc", "--reason", "registry",
        store=store,
    )  # fmt: skip
    assert result.returncode == 1  # a line was rejected
    assert "'dnc-2026' (dnc): 2 numbers, 2 added, 0 released, 1 rejected" in result.stdout
    assert "line 4:" in result.stderr
    check = stopgate("consents", "check", "+16505550100", "650 555 0111", store=store)
    assert "on suppression list 'dnc-2026' (dnc)" in check.stdout
    assert "blocked (suppressed)" in check.stdout

    second = tmp_path / "dnc2.txt"
    second.write_text("+16505550112\n+16505550113\n")
    result = stopgate(
        "suppressions", "import", "dnc-2026", str(second), "--kind", "dnc", store=store
    )
    assert result.returncode == 0, result.stderr
    assert "2 numbers, 1 added, 1 released, 0 rejected" in result.stdout
    exported = stopgate("suppressions", "export", "dnc-2026", store=store)
    assert exported.stdout == "TO\n+16505550112\n+16505550113\n"
    listed = stopgate("suppressions", "list", store=store)
    [header, row] = listed.stdout.splitlines()
    assert header == "NAME,KIND,MEMBERS,AS_OF,IMPORTED,REASON"
    assert row.startswith("dnc-2026,dnc,2,")
    assert (
        "allowed"
        in stopgate("consents", "check", "+16505550100", "+16505550111", store=store).stdout
    )
    dropped = stopgate("suppressions", "drop", "dnc-2026", store=store)
    assert "2 numbers released" in dropped.stdout
    assert stopgate("suppressions", "list", store=store).stdout.splitlines()[1:] == []


def test_a_reassigned_list_gives_way_only_to_a_newer_opt_in(tmp_path: Path, store: str) -> None:
    listing = tmp_path / "reassigned.csv"
    listing.write_text("+16505550111\n")
    consents = tmp_path / "consents.csv"
    consents.write_text(
        "FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME\n"
        "+16505550100,+16505550111,OptIn,Api,2026-01-01T00:00:00Z\n"
    )
    assert stopgate("consents", "import", str(consents), store=store).returncode == 0
    imported = stopgate(
        "suppressions", "import", "reassigned", str(listing), "--kind", "reassigned",
        "--as-of", "2026-06-01", store=store,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    check = stopgate("consents", "check", "+16505550100", "+16505550111", store=store)
    assert "blocked (suppressed)" in check.stdout and "newer than that date" in check.stdout
    consents.write_text(
        "FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME\n"
        "+16505550100,+16505550111,OptIn,Api,2026-07-01T00:00:00Z\n"
    )
    assert stopgate("consents", "import", str(consents), store=store).returncode == 0
    check = stopgate("consents", "check", "+16505550100", "+16505550111", store=store)
    assert check.stdout.splitlines()[-1].startswith("allowed")


def test_check_resolves_brands_and_opt_in_mode(tmp_path: Path, store: str) -> None:
    config = tmp_path / "stopgate.toml"
    config.write_text(
        '[brands.acme]\nnumbers = ["+16505550100", "+16505550199"]\n'
        '[consent_defaults]\n"+16505550177" = "require-opt-in"\n'
    )
    consents = tmp_path / "consents.csv"
    consents.write_text("FROM,TO,STATUS,SOURCE\nbrand:acme,+16505550111,OptOut,Api\n")
    assert stopgate("consents", "import", str(consents), store=store).returncode == 0
    check = stopgate(
        "consents", "check", "+16505550199", "+16505550111", "--config", str(config), store=store
    )
    assert "record for brand:acme: OptOut" in check.stdout
    assert "blocked (opt-out-brand)" in check.stdout
    marketing = stopgate(
        "consents", "check", "+16505550177", "+16505550112", "--config", str(config), store=store
    )
    assert "blocked (no-opt-in)" in marketing.stdout and "'require-opt-in'" in marketing.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad name!",), "a list name is 1-32"),
        (("ok", "--as-of", "yesterday"), "--as-of"),
    ],
)
def test_bad_import_arguments(
    tmp_path: Path, store: str, args: tuple[str, ...], message: str
) -> None:
    listing = tmp_path / "l.csv"
    listing.write_text("+16505550111\n")
    name, *rest = args
    result = stopgate("suppressions", "import", name, str(listing), *rest, store=store)
    assert result.returncode == 1
    assert message in result.stderr
