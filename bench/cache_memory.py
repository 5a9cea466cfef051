"""Memory of the consent cache: bytes per cached entry, and the budget of a million.

    .venv/bin/python bench/cache_memory.py [--pairs 500000] [--baseline] [--smoke] [--json OUT]

A send from business number F to customer T looks up two cache entries, ``(F, T)`` and
``(*, T)`` (plus ``(S, T)`` for a Twilio Messaging Service); ``cache_size`` counts entries. Each
measurement runs in a fresh child process: it creates the real :class:`ConsentIndex` with room
for every entry, fills it with ``--pairs`` customers the way a cache miss does (the two entries
of each send, keyed by the same canonical ``T`` string), and reports

* the Python heap growth seen by ``tracemalloc`` (exact, allocator overhead aside), and
* the growth of the process's resident memory (``VmRSS``; what an operator provisions),

divided by the entries. Two fillings: every pair without a consent record (the cached value is
``None``: the common case under the ``allow`` default) and every pair with one (a
``ConsentRecord`` as the store returns it; the wildcard entry stays ``None``). For comparison,
the same fillings in cachetools' ``LRUCache`` (``--baseline``), which the index used before it
kept its entries in one ``OrderedDict``. Each line names the container it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUSINESS = "+16505550100"
KINDS = ("no-record", "record")


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fill(pairs: int, kind: str, trace: bool, baseline: bool) -> dict[str, Any]:
    """Runs in the child: the measurement of one filling."""
    from cachetools import LRUCache

    from gateway.consent_index import ConsentIndex
    from policy.consent import ConsentRecord, OptStatus, Source
    from policy.numbers import WILDCARD

    gc.collect()
    if trace:
        tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0] if trace else 0
    rss_before = rss_bytes()
    started = time.perf_counter()
    # The store is never asked: every entry is put where a miss puts what the store returned.
    index = ConsentIndex(store=None, size=2 * pairs)  # type: ignore[arg-type]
    entries: Any = index._entries
    if baseline:
        entries = index._entries = LRUCache(maxsize=2 * pairs)  # type: ignore[assignment]
    with_record = kind == "record"
    for n in range(pairs):
        to_key = f"+1{2012000000 + n}"
        record = (
            ConsentRecord(
                f"+1{6505550100}", f"+1{2012000000 + n}", OptStatus.OPT_OUT, Source.API, n
            )
            if with_record
            else None
        )
        entries[(BUSINESS, to_key)] = record
        entries[(WILDCARD, to_key)] = None
    seconds = time.perf_counter() - started
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - heap_before if trace else None
    rss = rss_bytes() - rss_before
    count = len(index)
    assert count == 2 * pairs, (count, pairs)
    return {
        "kind": kind,
        "container": type(entries).__name__,
        "entries": count,
        "heap_bytes": heap,
        "rss_bytes": rss,
        "fill_seconds": seconds,
    }


def child(pairs: int, kind: str, trace: bool, baseline: bool) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--pairs", str(pairs)]
        + (["--trace"] if trace else [])
        + (["--baseline"] if baseline else []),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(pairs: int, baseline: bool) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    fillings = [(kind, False) for kind in KINDS]
    if baseline:
        fillings += [(kind, True) for kind in KINDS]
    for kind, old in fillings:
        plain = child(pairs, kind, trace=False, baseline=old)
        traced = child(pairs, kind, trace=True, baseline=old)
        entries = plain["entries"]
        label = f"baseline {plain['container']}" if old else plain["container"]
        results[f"{kind} ({label})"] = {
            "entries": entries,
            "rss_bytes_per_entry": plain["rss_bytes"] / entries,
            "heap_bytes_per_entry": traced["heap_bytes"] / entries,
            "fill_entries_per_s": entries / plain["fill_seconds"],
            "mib_per_million_entries": plain["rss_bytes"] / entries * 1e6 / 2**20,
        }
    return results


def render(pairs: int, results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"consent cache memory: {pairs:,} customers x 2 entries ((F, T) and (*, T)) in a fresh"
        " process per line",
        "",
        f"{'filling':<36} {'entries':>10} {'heap B/entry':>13} {'RSS B/entry':>12}"
        f" {'MiB per 10^6 entries (RSS)':>27}",
    ]
    for kind, r in results.items():
        lines.append(
            f"{kind:<36} {r['entries']:>10,} {r['heap_bytes_per_entry']:>13.0f}"
            f" {r['rss_bytes_per_entry']:>12.0f} {r['mib_per_million_entries']:>27.0f}"
        )
    worst = max(r["mib_per_million_entries"] for r in list(results.values())[: len(KINDS)])
    lines += [
        "",
        f"budget: cache_size = 1,000,000 entries (pairs) needs <= {worst:.0f} MiB of RSS"
        f" (the worse filling); 1,000,000 customers (2 entries each) <= {2 * worst:.0f} MiB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--pairs", type=int, default=500_000, help="customers cached (2 entries each)"
    )
    parser.add_argument("--smoke", action="store_true", help="20,000 customers (CI)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline", action="store_true", help="also measure cachetools' LRUCache (before)"
    )
    args = parser.parse_args(argv)
    if args.child:
        json.dump(fill(args.pairs, args.child, args.trace, args.baseline), sys.stdout)
        return 0
    pairs = 20_000 if args.smoke else args.pairs
    results = measure(pairs, args.baseline)
    print(render(pairs, results))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"customers": pairs, "results": results}, indent=2) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
