"""Memory of the consent cache: bytes per cached entry, and the budget of a million.

    .venv/bin/python bench/cache_memory.py [--pairs 500000] [--baseline] [--smoke] [--json OUT]

A send from business number F to customer T looks up two cache entries, ``(F, T)`` and
``(*, T)`` (plus ``(S, T)`` for a Twilio Messaging Service); ``cache_size`` counts entries. Each
measurement runs in a fresh child process: it creates the real :class:`ConsentIndex` with room
for every entry, fills it with ``--pairs`` customers the way a cache miss does (the two entries
of each send, keyed by the same canonical ``T`` string), and reports

* the Python heap growth seen by ``tracemalloc`` (exact, allocator overhead aside), and
* the growth of the process's resident memory (``VmRSS``; what an operator provisions),

divided by the entries. Three fillings of the consent entries: every pair without a consent
record (the cached value is ``None``: the common case under the ``allow`` default), every pair
with one (a ``ConsentRecord`` as the store returns it; the wildcard entry stays ``None``), and
every pair with one carrying a note and opt-in evidence (``EVIDENCE``: about 150 characters of
the caller's text; longer evidence costs about a byte a character more), and, the worst case,
every entry, the wildcard's too, with such a record. And the suppression
cache, which holds one entry per customer while any suppression list exists, with room for half
of ``cache_size``. The budget is the worst consent filling, plus that cache full. For
comparison, the consent fillings in cachetools' ``LRUCache`` (``--baseline``), which the index
used before it kept its entries in one ``OrderedDict``. Each line names the container it
measured. Every ``--workers`` process holds a cache of its own.
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
KINDS = ("no-record", "record", "record-evidence", "every-entry-evidence")
"""Fillings of the consent entries (``cache_size`` counts them)."""
SUPPRESSIONS = "suppressions"
"""The filling of the suppression cache: one entry per customer, held while any suppression
list exists, with room for half of ``cache_size`` (a cached customer has two consent entries)."""
NOTE = "keyword 'STOP'"
EVIDENCE = (
    '{"method":"web-form","url":"https://shop.example/sms-signup","ip":"203.0.113.7",'
    '"at":"2026-11-24T02:00:00Z","text":"Yes, text me offers"}'
)
"""A record's note and opt-in evidence as the consents API stores them (the evidence is the
caller's text: each character more is about a byte more per record)."""


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
    if kind == SUPPRESSIONS:
        suppressed: Any = index._suppressed
        for n in range(pairs):
            suppressed[f"+1{2012000000 + n}"] = ()  # no list names the customer: the usual case
        expected = pairs
    else:
        with_record = kind != "no-record"
        with_evidence = kind in ("record-evidence", "every-entry-evidence")
        everywhere = kind == "every-entry-evidence"

        def record(from_key: str, n: int) -> ConsentRecord | None:
            if not with_record:
                return None
            evidence = (f"{NOTE} {n}", f'{EVIDENCE[:-1]},"n":{n}}}') if with_evidence else ()
            return ConsentRecord(
                from_key, f"+1{2012000000 + n}", OptStatus.OPT_OUT, Source.API, n, *evidence
            )

        for n in range(pairs):
            to_key = f"+1{2012000000 + n}"
            entries[(BUSINESS, to_key)] = record(f"+1{6505550100}", n)
            # A record for every business number (an opt-out from all of them) is the rarer case.
            entries[(WILDCARD, to_key)] = record(WILDCARD, n) if everywhere else None
        expected = 2 * pairs
    seconds = time.perf_counter() - started
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - heap_before if trace else None
    rss = rss_bytes() - rss_before
    count = len(index._suppressed) if kind == SUPPRESSIONS else len(index)
    assert count == expected, (count, pairs)
    return {
        "kind": kind,
        "container": type(index._suppressed if kind == SUPPRESSIONS else entries).__name__,
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
    fillings = [(kind, False) for kind in (*KINDS, SUPPRESSIONS)]
    if baseline:
        fillings += [(kind, True) for kind in KINDS]
    for kind, old in fillings:
        plain = child(pairs, kind, trace=False, baseline=old)
        traced = child(pairs, kind, trace=True, baseline=old)
        entries = plain["entries"]
        label = f"baseline {plain['container']}" if old else plain["container"]
        results[f"{kind} ({label})"] = {
            "kind": kind,
            "baseline": old,
            "entries": entries,
            "rss_bytes_per_entry": plain["rss_bytes"] / entries,
            "heap_bytes_per_entry": traced["heap_bytes"] / entries,
            "fill_entries_per_s": entries / plain["fill_seconds"],
            "mib_per_million_entries": plain["rss_bytes"] / entries * 1e6 / 2**20,
        }
    return results


def budget(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """MiB of RSS for ``cache_size`` = 10⁶: the consent entries' worst filling, and the
    suppression cache at its full 500,000 customers (held only while a suppression list
    exists)."""
    current = [r for r in results.values() if not r["baseline"]]
    consent = max(r["mib_per_million_entries"] for r in current if r["kind"] in KINDS)
    suppressions = next(r for r in current if r["kind"] == SUPPRESSIONS)
    with_lists = consent + suppressions["mib_per_million_entries"] / 2
    return {"consent_mib": consent, "with_suppression_lists_mib": with_lists}


def render(pairs: int, results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"consent cache memory: {pairs:,} customers x 2 entries ((F, T) and (*, T)), and the"
        f" suppression cache's {pairs:,} customers, in a fresh process per line",
        "",
        f"{'filling':<36} {'entries':>10} {'heap B/entry':>13} {'RSS B/entry':>12}"
        f" {'MiB per 10^6 entries (RSS)':>27}",
    ]
    for kind, r in results.items():
        lines.append(
            f"{kind:<36} {r['entries']:>10,} {r['heap_bytes_per_entry']:>13.0f}"
            f" {r['rss_bytes_per_entry']:>12.0f} {r['mib_per_million_entries']:>27.0f}"
        )
    limits = budget(results)
    lines += [
        "",
        f"budget: cache_size = 1,000,000 entries (pairs) needs <= {limits['consent_mib']:.0f} MiB"
        f" of RSS (the worst filling), <= {limits['with_suppression_lists_mib']:.0f} MiB while"
        " any suppression list exists (its cache holds up to 500,000 customers); per process:"
        " each of --workers N holds its own.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--pairs", type=int, default=500_000, help="customers cached (2 entries each)"
    )
    parser.add_argument("--smoke", action="store_true", help="20,000 customers (CI)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--child", choices=(*KINDS, SUPPRESSIONS), help=argparse.SUPPRESS)
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
            json.dumps(
                {"customers": pairs, "results": results, "budget_mib": budget(results)}, indent=2
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
