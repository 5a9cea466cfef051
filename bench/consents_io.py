"""Benchmark: bulk import and export of consent records on the SQLite store.

    python bench/consents_io.py [--rows 1000000] [--smoke] [--json OUT]

Writes a CSV of ``--rows`` records (``FROM,TO,STATUS,SOURCE``, E.164, a few business numbers),
then runs the real command line - ``stopgate consents import`` and ``stopgate consents export`` -
as child processes on a fresh store, and reports rows/s and each child's peak RSS. The export is
re-imported into a second store and compared line by line, so the figures are of a correct
round trip. ``--smoke`` uses 20,000 rows (for CI: it must only not rot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pg_schema import postgres_schema  # the bench directory is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, rows: int) -> None:
    businesses = [f"+1650555{n:04d}" for n in range(100, 110)]
    with path.open("w", encoding="utf-8") as out:
        out.write("FROM,TO,STATUS,SOURCE\n")
        for n in range(rows):
            status = "OptOut" if n % 3 else "OptIn"
            out.write(f"{businesses[n % 10]},+1{2012000000 + n},{status},Api\n")


def run(args: list[str], store: str) -> tuple[float, int, str]:
    """(seconds, peak RSS of this child in KiB, stdout). ``wait4`` gives the child's own
    resource usage, so one run's peak never masks another's."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *args, "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "STOPGATE_LOG_LEVEL": "WARNING"},
    )
    assert child.stdout is not None and child.stderr is not None
    stdout = child.stdout.read()
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stdout.close()
    child.stderr.close()
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({child.returncode}): {stderr[-2000:]}")
    return elapsed, usage.ru_maxrss, stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on PostgreSQL at this URL (two schemas of its own, dropped after) instead of"
        " SQLite files",
    )
    options = parser.parse_args()
    rows = 20_000 if options.smoke else options.rows

    with tempfile.TemporaryDirectory(prefix="stopgate-bench-") as tmp:
        work = Path(tmp)
        source = work / "in.csv"
        started = time.perf_counter()
        write_csv(source, rows)
        generated = time.perf_counter() - started
        stores = contextlib.ExitStack()
        if options.postgres:
            first = stores.enter_context(postgres_schema(options.postgres))
            second = stores.enter_context(postgres_schema(options.postgres))
        else:
            first = f"sqlite:///{work / 'first.db'}"
            second = f"sqlite:///{work / 'second.db'}"
        exported = work / "out.csv"
        again = work / "again.csv"

        import_s, import_rss, summary = run(["consents", "import", str(source)], first)
        export_s, export_rss, _ = run(["consents", "export", "-o", str(exported)], first)
        run(["consents", "import", str(exported)], second)
        run(["consents", "export", "-o", str(again)], second)
        exported_lines = exported.read_text().count("\n")
        same = exported.read_bytes() == again.read_bytes()
        stores.close()

    figures = {
        "store": "postgresql" if options.postgres else "sqlite",
        "rows": rows,
        "csv_generation_s": round(generated, 2),
        "import_s": round(import_s, 2),
        "import_rows_per_s": round(rows / import_s),
        "import_peak_rss_mib": round(import_rss / 1024, 1),
        "export_s": round(export_s, 2),
        "export_rows_per_s": round(rows / export_s),
        "export_peak_rss_mib": round(export_rss / 1024, 1),
        "exported_lines": exported_lines,
        "round_trip_identical": same,
        "import_summary": summary.strip(),
    }
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2) + "\n")
    ok = same and exported_lines == rows + 1
    if not ok:
        print("FAILED: the export does not re-import to the same state", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
