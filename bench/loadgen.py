"""HTTP/1.1 load generator of the benches: closed loop, or open loop at a constant rate.

Closed loop (the default): N connections, each keep-alive, each with one request in flight at a
time: send pre-built request bytes, read the response (status line, headers, ``Content-Length``
or ``chunked`` body), record the latency, send the next.

Open loop (``rate`` > 0 in the spec): requests are *due* at a constant rate, whatever the
server does; a pool of N keep-alive connections takes them in turn, and a request's latency
runs from the moment it was due, not from when a connection got free - so a server that falls
behind shows its queueing in the latency (no coordinated omission). There is no priming phase:
the warm-up sends at the same rate. The requests rotate over the list in the
spec, so a few thousand distinct recipients cost nothing to generate.

Interleaved open loop (``interleave`` in the spec: more targets, each with its own requests): every
target is offered ``rate`` requests/s, due times staggered evenly between the targets (with two,
one target's request is due half an interval after the other's), each target on a pool of
``connections`` of its own, latencies kept per target. Two paths measured this way meet the same
machine at the same moments, so their difference (e.g. what a proxy adds over the direct path)
does not carry the drift between two runs made one after the other. Raw asyncio streams (uvloop
when installed): no HTTP client library, so the generator stays cheap next to what it measures.

Phases: *prime* (every distinct request once, spread over the connections: fills the gateway's
consent cache), *warm-up* (unmeasured, ``warmup`` seconds), *measure* (``duration`` seconds: a
request counts when it starts and ends inside the window). Every read is bounded by a timeout
and the whole run by ``warmup + duration + grace``, so it always ends.

Input: a JSON spec file (see :class:`Spec`). Output: one JSON document on stdout.

    python bench/loadgen.py SPEC.json
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

READ_TIMEOUT = 10.0
"""Seconds one response may take before it counts as an error and the connection is dropped."""
GRACE = 12.0
"""Seconds after the window closes that in-flight requests may still finish."""
MAX_HEAD = 64 * 1024
ERROR_SAMPLES = 5
PR_SET_TIMERSLACK = 29


@dataclass(frozen=True, slots=True)
class Target:
    """One more server an interleaved open loop offers the same rate to."""

    port: int
    requests: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Spec:
    host: str
    port: int
    connections: int
    duration: float
    warmup: float
    requests: tuple[bytes, ...]
    expect_status: int
    expect_body: bytes | None = None
    """A byte string every response body must contain (e.g. ``21610``)."""
    prime: bool = True
    watch: dict[str, int] = field(default_factory=dict)
    """Processes (name -> pid) whose CPU use over the measure window is reported."""
    rate: float = 0.0
    """Requests per second offered at a constant rate (open loop); 0: closed loop."""
    interleave: tuple[Target, ...] = ()
    """Open loop only: more targets, each offered ``rate`` as well (see the module's text)."""

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Spec:
        expect_body = document.get("expect_body")
        return cls(
            host=str(document["host"]),
            port=int(document["port"]),
            connections=int(document["connections"]),
            duration=float(document["duration"]),
            warmup=float(document["warmup"]),
            requests=tuple(base64.b64decode(r) for r in document["requests"]),
            expect_status=int(document["expect_status"]),
            expect_body=expect_body.encode() if expect_body else None,
            prime=bool(document.get("prime", True)),
            watch={str(k): int(v) for k, v in document.get("watch", {}).items()},
            rate=float(document.get("rate", 0.0)),
            interleave=tuple(
                Target(
                    port=int(target["port"]),
                    requests=tuple(base64.b64decode(r) for r in target["requests"]),
                )
                for target in document.get("interleave", ())
            ),
        )


class BadResponse(Exception):
    pass


@dataclass(slots=True)
class Run:
    spec: Spec
    port: int
    requests: tuple[bytes, ...]
    window_start: float = 0.0
    window_end: float = 0.0
    next_request: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    unexpected: int = 0
    stop: bool = False

    def take(self) -> bytes:
        requests = self.requests
        request = requests[self.next_request]
        self.next_request = (self.next_request + 1) % len(requests)
        return request

    def error(self, kind: str, detail: str, measured: bool) -> None:
        if measured:
            self.errors[kind] += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(f"{kind}: {detail}"[:300])


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise BadResponse("response head too large")
    line_end = head.find(b"\r\n")
    parts = head[:line_end].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise BadResponse(f"bad status line {head[:line_end][:80]!r}")
    status = int(parts[1])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower and parts[0] == b"HTTP/1.1"
    if b"\r\ntransfer-encoding: chunked" in lower:
        chunks: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            chunk = await reader.readexactly(size + 2)
            chunks.append(chunk[:-2])
        return status, b"".join(chunks), keep_alive
    marker = lower.find(b"\r\ncontent-length:")
    if marker >= 0:
        value_end = lower.find(b"\r\n", marker + 2)
        length = int(lower[marker + 17 : value_end])
        return status, await reader.readexactly(length), keep_alive
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", keep_alive
    # No length: the body runs to the end of the connection.
    return status, await reader.read(), False


async def connection_worker(run: Run, prime: list[bytes]) -> None:
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    perf = time.perf_counter_ns
    try:
        while not run.stop:
            now = time.perf_counter()
            if now >= run.window_end:
                return
            if connection is None:
                connection = await open_connection(run, now >= run.window_start)
                if connection is None:
                    await asyncio.sleep(0.05)
                    continue
            reader, writer = connection
            request = prime.pop() if prime else run.take()
            started = perf()
            measured = started >= run.window_start * 1e9
            try:
                writer.write(request)
                status, body, keep_alive = await asyncio.wait_for(
                    read_response(reader), READ_TIMEOUT
                )
            except (
                OSError,
                TimeoutError,
                BadResponse,
                ValueError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ) as exc:
                run.error(type(exc).__name__, repr(exc), measured)
                writer.close()
                connection = None
                await asyncio.sleep(0.01)
                continue
            ended = perf()
            if measured and ended <= run.window_end * 1e9:
                record(run, status, body, ended - started)
            if not keep_alive:
                writer.close()
                connection = None
    finally:
        if connection is not None:
            connection[1].close()


async def open_connection(
    run: Run, measured: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(run.spec.host, run.port), READ_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        run.error("connect", repr(exc), measured)
        return None


def record(run: Run, status: int, body: bytes, latency_ns: int) -> None:
    spec = run.spec
    run.latencies_ns.append(latency_ns)
    run.statuses[status] += 1
    if status != spec.expect_status or (
        spec.expect_body is not None and spec.expect_body not in body
    ):
        run.unexpected += 1
        if len(run.error_samples) < ERROR_SAMPLES:
            run.error_samples.append(f"unexpected {status}: {body[:200]!r}")


async def open_loop_worker(run: Run, due: asyncio.Queue[float | None]) -> None:
    """Takes due times (``perf_counter`` seconds) off the queue; one request each."""
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while (intended := await due.get()) is not None:
            measured = run.window_start <= intended < run.window_end
            if connection is None:
                connection = await open_connection(run, measured)
                if connection is None:
                    continue
            reader, writer = connection
            try:
                writer.write(run.take())
                status, body, keep_alive = await asyncio.wait_for(
                    read_response(reader), READ_TIMEOUT
                )
            except (
                OSError,
                TimeoutError,
                BadResponse,
                ValueError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ) as exc:
                run.error(type(exc).__name__, repr(exc), measured)
                writer.close()
                connection = None
                continue
            if measured:
                record(run, status, body, time.perf_counter_ns() - int(intended * 1e9))
            if not keep_alive:
                writer.close()
                connection = None
    finally:
        if connection is not None:
            connection[1].close()


def precise_sleeps() -> None:
    """Lets this thread's sleeps end when asked, not up to 50 µs later (Linux's default timer
    slack); elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def dispatch(
    loop: asyncio.AbstractEventLoop,
    runs: list[Run],
    queues: list[asyncio.Queue[float | None]],
    begin: float,
    stop: threading.Event,
) -> None:
    """Puts a due time on a run's queue every 1/rate seconds from ``begin`` to the window's end
    (or until ``stop`` is set, or the loop closed), the runs' due times staggered evenly.

    Runs in a thread of its own: an event loop's timers wake up to a millisecond late (uvloop
    counts in milliseconds: late by 0.4 ms at the median here), and as every latency runs from
    its due time, that lateness would count as the server's, by an amount that depends on
    where the due times fall between two ticks of the loop's clock - the same all run long, and
    different for two targets or two runs. ``time.sleep`` ends within about 0.1 ms."""
    precise_sleeps()
    targets = len(runs)
    interval = 1.0 / (runs[0].spec.rate * targets)
    window_end = runs[0].window_end
    sent = 0
    while (intended := begin + sent * interval) < window_end and not stop.is_set():
        delay = intended - time.perf_counter()
        if delay > 0:
            time.sleep(min(delay, 0.1))  # a stop is seen within 0.1 s at any rate
            continue
        # Everything due by now goes out together (a late wake-up does not lower the rate).
        now = time.perf_counter()
        due: list[tuple[int, float]] = []
        while (intended := begin + sent * interval) <= now and intended < window_end:
            due.append((sent % targets, intended))
            sent += 1
        try:
            loop.call_soon_threadsafe(enqueue, queues, due)
        except RuntimeError:  # the loop is closed: the run is over
            return


def enqueue(queues: list[asyncio.Queue[float | None]], due: list[tuple[int, float]]) -> None:
    for target, intended in due:
        queues[target].put_nowait(intended)


def percentile(sorted_ns: list[int], fraction: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_ns:
        return None
    rank = max(1, min(len(sorted_ns), round(fraction * len(sorted_ns) + 0.5)))
    return sorted_ns[rank - 1] / 1e6


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a whole process (every thread), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields after "(comm)": state is index 0, utime 11, stime 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat; busy excludes idle and iowait."""
    times: dict[str, tuple[int, int]] = {}
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            for line in handle:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *values = line.split()
                numbers = [int(v) for v in values[:8]]
                total = sum(numbers)
                times[name[3:]] = (total - numbers[3] - numbers[4], total)
    except (OSError, ValueError):
        return {}
    return times


def busy_percent(
    start: dict[str, tuple[int, int]], end: dict[str, tuple[int, int]]
) -> dict[str, float]:
    busy: dict[str, float] = {}
    for cpu, (busy_end, total_end) in end.items():
        if cpu in start and total_end > start[cpu][1]:
            busy_start, total_start = start[cpu]
            busy[cpu] = 100.0 * (busy_end - busy_start) / (total_end - total_start)
    return busy


def latency_summary(run: Run, window: float) -> dict[str, Any]:
    latencies = sorted(run.latencies_ns)
    return {
        "port": run.port,
        "requests": len(latencies),
        "window_s": window,
        "rps": len(latencies) / window,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "max_ms": latencies[-1] / 1e6 if latencies else None,
        "mean_ms": sum(latencies) / len(latencies) / 1e6 if latencies else None,
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
        "unexpected": run.unexpected,
        "errors": dict(run.errors),
        "error_count": sum(run.errors.values()) + run.unexpected,
        "error_samples": run.error_samples,
    }


async def drive(spec: Spec) -> dict[str, Any]:
    if spec.interleave and not spec.rate:
        raise ValueError("interleave needs an open loop (a rate)")
    prime = list(reversed(spec.requests)) if spec.prime and not spec.rate else []
    primed = len(prime)
    runs = [Run(spec, spec.port, spec.requests)]
    runs += [Run(spec, target.port, target.requests) for target in spec.interleave]
    run = runs[0]
    # Generous window until priming is done; fixed once the warm-up starts.
    for each in runs:
        each.window_start = each.window_end = time.perf_counter() + 3600.0
    prime_started = time.perf_counter()
    queues: list[asyncio.Queue[float | None]] = [asyncio.Queue() for _ in runs]
    workers: list[tuple[Run, asyncio.Task[None]]]
    if spec.rate:
        workers = [
            (each, asyncio.create_task(open_loop_worker(each, due)))
            for each, due in zip(runs, queues, strict=True)
            for _ in range(spec.connections)
        ]
    else:
        workers = [
            (run, asyncio.create_task(connection_worker(run, prime)))
            for _ in range(spec.connections)
        ]
    tasks = [task for _, task in workers]
    # Priming is bounded too: a gateway that cannot answer fails the run instead of hanging it.
    prime_deadline = prime_started + READ_TIMEOUT + 0.01 * primed
    while prime and time.perf_counter() < prime_deadline:
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.005)
    prime_seconds = time.perf_counter() - prime_started
    begin = time.perf_counter()
    for each in runs:
        each.window_start = begin + spec.warmup
        each.window_end = each.window_start + spec.duration
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    dispatcher = (
        loop.run_in_executor(None, dispatch, loop, runs, queues, begin, stop) if spec.rate else None
    )
    try:
        await asyncio.sleep(max(0.0, run.window_start - time.perf_counter()))
        watch_start = {name: cpu_seconds(pid) for name, pid in spec.watch.items()}
        own_start = time.process_time()
        system_start = cpu_times()
        await asyncio.sleep(max(0.0, run.window_end - time.perf_counter()))
        watch_end = {name: cpu_seconds(pid) for name, pid in spec.watch.items()}
        own_end = time.process_time()
        system_end = cpu_times()
        backlogs = [0] * len(queues)
        if dispatcher is not None:
            await dispatcher
            # The thread's last hand-over ran before its end was reported: both go through the
            # loop's queue of callbacks, in order.
            backlogs = [due.qsize() for due in queues]
    finally:
        # An error or a cancellation (Ctrl-C) ends the thread too, instead of leaving the
        # interpreter's exit waiting for the window's end.
        stop.set()
    window = run.window_end - run.window_start
    if dispatcher is not None:
        # The open loop's workers end on these; the closed loop's read no queue.
        for due in queues:
            for _ in range(spec.connections):
                due.put_nowait(None)
    _, pending = await asyncio.wait(tasks, timeout=GRACE)
    for each in runs:
        each.stop = True
    for each, task in workers:
        if task in pending:
            task.cancel()
            each.errors["timeout"] += 1
    await asyncio.gather(*tasks, return_exceptions=True)
    for each, task in workers:
        if not task.cancelled() and task.exception() is not None:
            each.errors["crash"] += 1
            each.error_samples.append(repr(task.exception()))

    cpu: dict[str, float | None] = {"loadgen": 100.0 * (own_end - own_start) / window}
    for name in spec.watch:
        started, ended = watch_start[name], watch_end[name]
        cpu[name] = None if started is None or ended is None else 100.0 * (ended - started) / window
    result = latency_summary(run, window)
    if spec.interleave:
        result["targets"] = [
            latency_summary(each, window) | {"backlog_at_end": backlog}
            for each, backlog in zip(runs, backlogs, strict=True)
        ]
    return result | {
        "primed": primed - len(prime),
        "prime_s": prime_seconds,
        "cpu_percent": cpu,
        "cpu_busy_percent": busy_percent(system_start, system_end),
        "connections": spec.connections,
        "offered_rps": spec.rate or None,
        "backlog_at_end": sum(backlogs),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: loadgen.py SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        spec = Spec.from_json(json.load(handle))
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(drive(spec))
        result["event_loop"] = "asyncio"
    else:
        result = uvloop.run(drive(spec))
        result["event_loop"] = "uvloop"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
