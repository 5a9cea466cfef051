"""How long the event loop is held while a suppression list is canonicalised: in a worker
thread (what ``PUT /admin/suppressions/{name}`` does) against inline on the loop.

    .venv/bin/python bench/suppression_loop_pause.py [ROWS]

A ticker sleeping 5 ms on the loop records every gap; the longest gap is how long a send
arriving meanwhile would wait. Numbers are written as people write them ("(212) 555-0123"),
and each run uses fresh ones (customer keys are memoised).
"""

from __future__ import annotations

import asyncio
import sys
import time

from gateway.consent_csv import parse_numbers

CHUNK = 1_000


def _canonicalise(lines: list[str]) -> int:
    return sum(1 for _ in parse_numbers(lines, region="US"))


async def measure(mode: str, area: int, rows: int) -> None:
    lines = [f"({area}) 55{n // 10_000 % 10}-{n % 10_000:04d}\n" for n in range(rows)]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    for start in range(0, rows, CHUNK):
        part = lines[start : start + CHUNK]
        if mode == "thread":
            await asyncio.to_thread(_canonicalise, part)
        else:
            _canonicalise(part)
            await asyncio.sleep(0)
    done.set()
    await ticking
    print(
        f"{mode:6}: {rows} rows in {time.perf_counter() - started:.2f} s,"
        f" longest loop pause {max(gaps) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for mode, area in (("inline", 212), ("thread", 305), ("inline", 415), ("thread", 646)):
        asyncio.run(measure(mode, area, count))
