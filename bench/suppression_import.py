"""Benchmark: importing and refreshing a suppression list.

    python bench/suppression_import.py [--rows 100000] [--postgres URL]

End to end: writes a file of ``--rows`` numbers and runs the real command line,
``stopgate suppressions import``, twice on a fresh SQLite store (a first import, then a refresh
of the same list with every other number replaced), reporting rows/s and each child's peak RSS.
Store side: the same rows, already canonical, through ``gateway.suppressions.import_list`` on
SQLite and (with ``--postgres``) PostgreSQL, so the canonicalising cost and the store's cost
show apart.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pg_schema import postgres_schema  # the bench directory is on sys.path

from gateway.store import store_from_url
from gateway.suppressions import import_list
from policy.consent import SuppressionKind

ROOT = Path(__file__).resolve().parents[1]


def numbers(rows: int, shift: int = 0) -> list[str]:
    return [f"+1650{2_000_000 + (n + shift) * 7:07d}" for n in range(rows)]


def run_cli(store: str, path: Path) -> tuple[float, int, str]:
    """Seconds, peak RSS (KiB) of the child, and its summary line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "suppressions", "import", "bench", str(path)),
            *("--store", store, "--kind", "dnc"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before), done.stdout.strip()


async def store_side(url: str, rows: int) -> list[str]:
    store = store_from_url(url)
    await store.open()
    lines = []
    try:
        for label, shift in (("first import", 0), ("refresh (half replaced)", rows // 2)):
            keys = numbers(rows, shift)
            started = time.perf_counter()
            await import_list(store, "bench", SuppressionKind.DNC, keys, listed_us=0, note=None)
            rate = rows / (time.perf_counter() - started)
            lines.append(f"  {store.url_scheme} {label}: {rate:,.0f} rows/s")
    finally:
        await store.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", help="postgresql:// URL (a throwaway schema is used)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        store = f"sqlite:///{directory / 'cli.db'}"
        print(f"end to end (stopgate suppressions import, {args.rows:,} rows):")
        for label, shift in (("first import", 0), ("refresh (half replaced)", args.rows // 2)):
            path = directory / f"list-{shift}.csv"
            path.write_text("Phone\n" + "\n".join(numbers(args.rows, shift)) + "\n")
            elapsed, peak, summary = run_cli(store, path)
            print(f"  {label}: {args.rows / elapsed:,.0f} rows/s, peak RSS {peak / 1024:.0f} MiB")
            print(f"    {summary}")
        print("store side (canonical rows through import_list):")
        for line in asyncio.run(store_side(f"sqlite:///{directory / 'store.db'}", args.rows)):
            print(line)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                for line in asyncio.run(store_side(url, args.rows)):
                    print(line)


if __name__ == "__main__":
    main()
