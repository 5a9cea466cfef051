"""Benchmark: consent lookups with many records, on SQLite and PostgreSQL.

    python bench/store_lookup.py [--records 1000000] [--lookups 20000] [--smoke] [--json OUT]
                                 [--postgres URL]

Seeds ``--records`` consent records through the store's own bulk write (``apply`` in batches of
10,000, timed: rows/s), then measures, on the same machine and in the same run:

* a cache miss: ``ConsentStore.get_records`` for a random customer (pair + wildcard keys);
* a send's cache miss: ``ConsentStore.get_records_many`` of that and the erasure alias;
* a cache hit: ``ConsentIndex.records`` for a key already cached;
* the floor each backend allows: a raw primary-key lookup (``sqlite3`` on the same file; an
  asyncpg prepared statement on one connection), so the store's overhead is a ratio.

PostgreSQL runs when a server answers at ``--postgres`` (default: the CI server at
127.0.0.1:5432, database ``test``), in a schema of its own that is dropped afterwards.
``--smoke`` uses 20,000 records and 2,000 lookups.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.consent_index import ConsentIndex
from gateway.erasure import alias
from gateway.store import store_from_url
from gateway.store.base import ConsentChange, ConsentStore
from policy.consent import OptStatus, Source

BUSINESS = "+16505550100"
BATCH = 10_000


def customer(n: int) -> str:
    return f"+1{2012000000 + n}"


async def timed(samples: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    latencies: list[float] = []
    for _ in range(samples):
        started = time.perf_counter_ns()
        await call()
        latencies.append((time.perf_counter_ns() - started) / 1000)
    latencies.sort()
    return {
        "p50_us": round(statistics.median(latencies), 1),
        "p99_us": round(latencies[int(len(latencies) * 0.99) - 1], 1),
    }


async def seed(store: ConsentStore, records: int) -> float:
    started = time.perf_counter()
    for start in range(0, records, BATCH):
        batch = [
            ConsentChange(
                BUSINESS,
                customer(n),
                OptStatus.OPT_OUT if n % 3 else OptStatus.OPT_IN,
                Source.API,
                actor="bench",
                modified_us=1_700_000_000_000_000 + n,
            )
            for n in range(start, min(records, start + BATCH))
        ]
        await store.apply(batch)
    return records / (time.perf_counter() - started)


async def measure(
    url: str, records: int, lookups: int, raw: Callable[[int], Awaitable[Any]]
) -> dict[str, Any]:
    store = store_from_url(url)
    await store.open()
    try:
        rate = await seed(store, records)
        rng = random.Random(7)
        picks = [rng.randrange(records) for _ in range(lookups)]
        keys = [BUSINESS, "*"]
        it = iter(picks)
        miss = await timed(lookups, lambda: store.get_records(customer(next(it)), keys))
        # What a send reads on a miss: the pair and wildcard, and the erasure alias, together.
        it3 = iter(picks)
        send_miss = await timed(
            lookups,
            lambda: store.get_records_many(
                ((number := customer(next(it3)), keys), (alias(b"k" * 32, number), ["*"]))
            ),
        )
        index = ConsentIndex(store, size=lookups + 10)
        index.trusted = True
        await index.records(customer(0), keys)
        hit = await timed(lookups, lambda: index.records(customer(0), keys))
        it2 = iter(picks)
        floor = await timed(lookups, lambda: raw(next(it2)))
    finally:
        await store.close()
    return {
        "seed_rows_per_s": round(rate),
        "miss": miss,
        "send_miss": send_miss,
        "hit": hit,
        "raw_primary_key_lookup": floor,
        "miss_over_raw_p50": round(miss["p50_us"] / floor["p50_us"], 2),
        "send_miss_over_raw_p50": round(send_miss["p50_us"] / floor["p50_us"], 2),
    }


async def sqlite_run(records: int, lookups: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stopgate-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        # The raw floor: one connection, the primary-key lookup the store makes (no thread hop).
        raw_holder: dict[str, sqlite3.Connection] = {}

        async def raw(n: int) -> Any:
            conn = raw_holder.get("c")
            if conn is None:
                conn = raw_holder["c"] = sqlite3.connect(path)
            return conn.execute(
                "SELECT status FROM consent WHERE to_key = ? AND from_key IN (?, ?)",
                (customer(n), BUSINESS, "*"),
            ).fetchall()

        try:
            return await measure(url, records, lookups, raw)
        finally:
            if "c" in raw_holder:
                raw_holder["c"].close()


async def postgres_run(base: str, records: int, lookups: int) -> dict[str, Any] | None:
    import asyncpg

    try:
        admin = await asyncpg.connect(base, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"postgresql skipped: {exc}", file=sys.stderr)
        return None
    schema = f"bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    conn = await asyncpg.connect(base, server_settings={"search_path": schema})
    statement: Any = None

    async def raw(n: int) -> Any:
        nonlocal statement
        if statement is None:
            statement = await conn.prepare(
                "SELECT status FROM consent WHERE to_key = $1 AND from_key = ANY($2::text[])"
            )
        return await statement.fetch(customer(n), [BUSINESS, "*"])

    try:
        return await measure(url, records, lookups, raw)
    finally:
        await conn.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json")
    options = parser.parse_args()
    records, lookups = (20_000, 2_000) if options.smoke else (options.records, options.lookups)

    async def run() -> dict[str, Any]:
        figures: dict[str, Any] = {"records": records, "lookups": lookups}
        figures["sqlite"] = await sqlite_run(records, lookups)
        figures["postgresql"] = await postgres_run(options.postgres, records, lookups)
        return figures

    try:  # as ``stopgate serve`` runs when uvloop is installed; both sides of a ratio alike
        import uvloop

        figures = uvloop.run(run())
    except ImportError:
        figures = asyncio.run(run())
    print(json.dumps(figures, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
