"""Send-path benchmark: what Stopgate costs on a Twilio ``Messages.json`` send.

Starts, all on 127.0.0.1 and each as its own process:

1. ``bench/fast_upstream.py``: a minimal asyncio HTTP/1.1 server that answers every
   ``Messages.json`` POST with a static 600-byte Twilio message resource (the carrier simulator
   is far too slow to be a fair upstream);
2. ``stopgate serve`` in front of it (both dialects pointed at it), on a fresh SQLite store in a
   temporary directory, with a handful of opted-out pairs written through the consents API;

then drives ``bench/loadgen.py`` (closed loop, N keep-alive connections, raw asyncio streams,
pre-built request bytes) through three scenarios:

(a) straight to the upstream: the baseline;
(b) through Stopgate, allowed sends rotating over many recipients, consent cache warm;
(c) through Stopgate, sends to the opted-out pairs: refused, 400 with Twilio code 21610.

It prints req/s, p50/p99 latency and errors per scenario, (b)'s ratio to (a) and its added
latency, and optionally writes everything as JSON. ``--smoke`` runs each scenario for about a
second with few connections and exits 0 only when every scenario got only the expected answers.

    .venv/bin/python bench/send_path.py --duration 10 --connections 16 --json out.json
    .venv/bin/python bench/send_path.py --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pg_schema import postgres_schema  # the bench directory is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"

# The carrier simulator's published Twilio account (not a secret); Stopgate is given the same
# auth token, so it accepts the Basic credentials locally without asking the upstream.
try:
    sys.path.insert(0, str(ROOT))
    from gateway.carriersim.state import SimCredentials

    ACCOUNT_SID = SimCredentials.twilio_account_sid
    AUTH_TOKEN = SimCredentials.twilio_auth_token
except ImportError:  # pragma: no cover - the bench runs from the repository's venv
    ACCOUNT_SID = "AC5709a7e55709a7e55709a7e55709a7e5"
    AUTH_TOKEN = "7d3c1b5e9f2a4c6e8b0d1f3a5c7e9b2d"

BUSINESS_NUMBER = "+16505550100"
ALLOWED_BASE = 6505551000
"""Allowed recipients are +1 650-555-1000 upwards (no consent record: the default, allow)."""
BLOCKED_BASE = 6505559000
"""Opted-out recipients are +1 650-555-9000 upwards (an OptOut record for each pair)."""
MESSAGE_TEXT = "Your appointment is confirmed for tomorrow at 10:00."

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
LOADGEN_SLACK = 45.0
"""Seconds a load generator may run past warm-up + duration before it is killed."""


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    target: str
    """``upstream`` or ``gateway``."""
    numbers: tuple[str, ...]
    expect_status: int
    expect_body: str | None


@dataclass(frozen=True, slots=True)
class CpuPlan:
    gateway: frozenset[int] | None
    upstream: frozenset[int] | None
    loadgen: frozenset[int] | None
    note: str


@dataclass(slots=True)
class Processes:
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        cpus: frozenset[int] | None,
        env: dict[str, str] | None = None,
        log: Path,
    ) -> subprocess.Popen[bytes]:
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                list(command),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(cpus),
            )
        self.running.append((name, process))
        return process

    def stop_all(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(OSError):  # a stopped process acts on SIGTERM only then
                    os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + STOP_TIMEOUT
        for _, process in reversed(self.running):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        self.running.clear()


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """Runs in the child before exec: pin it, and make it die with this process."""

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphan survives the bench

    return setup


def plan_cpus(pin: bool) -> CpuPlan:
    available = sorted(os.sched_getaffinity(0))
    if not pin:
        return CpuPlan(None, None, None, f"not pinned ({len(available)} CPUs available)")
    if len(available) < 2:
        return CpuPlan(None, None, None, f"not pinned: only {len(available)} CPU available")
    gateway = frozenset({available[0]})
    upstream = frozenset({available[1]})
    loadgen = frozenset({available[2]}) if len(available) > 2 else upstream
    if loadgen == upstream:
        note = (
            f"stopgate on CPU {available[0]}; upstream + load generator share CPU "
            f"{available[1]} (the harness does the same work per request in every scenario, "
            "so the gateway gets a core of its own)"
        )
    else:
        note = (
            f"stopgate on CPU {available[0]}, upstream on CPU {available[1]}, "
            f"load generator on CPU {available[2]}"
        )
    return CpuPlan(gateway, upstream, loadgen, note)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"{name} did not listen on {port} within {START_TIMEOUT:.0f} s:\n{tail(log)}")


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"stopgate exited with {process.returncode}:\n{tail(log)}")
        try:
            status, body = http("GET", f"http://{HOST}:{port}/readyz", timeout=1.0)
        except OSError as exc:
            last = repr(exc)
        else:
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        time.sleep(0.1)
    raise BenchError(f"stopgate not ready within {START_TIMEOUT:.0f} s ({last}):\n{tail(log)}")


class BenchError(Exception):
    pass


def number(base: int, index: int) -> str:
    return f"+1{base + index}"


def send_request(port: int, to: str) -> bytes:
    body = urllib.parse.urlencode({"To": to, "From": BUSINESS_NUMBER, "Body": MESSAGE_TEXT})
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    head = (
        f"POST /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        f"Authorization: Basic {credentials}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Accept: application/json\r\n"
        "User-Agent: stopgate-bench\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body.encode("ascii")


def opt_out(port: int, admin_token: str, recipients: Sequence[str]) -> None:
    document = {
        "records": [{"from": BUSINESS_NUMBER, "to": to, "optStatus": "OptOut"} for to in recipients]
    }
    status, body = http(
        "PATCH",
        f"http://{HOST}:{port}/restapi/v2/accounts/~/sms/consents",
        body=json.dumps(document).encode(),
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    if status != 200:
        raise BenchError(f"consents PATCH answered {status}: {body[:500]!r}")


def preflight(port: int, allowed: str, blocked: str) -> None:
    """One send of each kind, so a broken gateway fails with its own words, not a statistic."""
    for to, want, marker in ((allowed, 201, None), (blocked, 400, b"21610")):
        raw = send_request(port, to)
        head, body = raw.split(b"\r\n\r\n", 1)
        headers = dict(
            line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
        )
        headers.pop("Host", None)
        headers.pop("Content-Length", None)
        status, answer = http(
            "POST",
            f"http://{HOST}:{port}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
            body=body,
            headers=headers,
        )
        if status != want or (marker is not None and marker not in answer):
            raise BenchError(
                f"preflight send to {to}: expected {want}, got {status}: {answer[:500]!r}"
            )


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def filesystem_of(path: Path) -> str:
    """The mount type holding ``path`` (the blocked-send log fsyncs, so it matters)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def run_loadgen(
    processes: Processes,
    scenario: Scenario,
    port: int,
    *,
    connections: int,
    duration: float,
    warmup: float,
    watch: dict[str, int],
    cpus: frozenset[int] | None,
    workdir: Path,
    rate: float = 0.0,
    interleave: Sequence[int] = (),
) -> dict[str, Any]:
    """Run ``bench/loadgen.py`` on Twilio sends to ``scenario.numbers``: closed loop, or open
    loop at ``rate`` requests/s when given; an open loop offers the same rate to each port of
    ``interleave`` too, interleaved (the result's ``targets`` has one entry per port)."""
    spec = {
        "host": HOST,
        "port": port,
        "connections": connections,
        "duration": duration,
        "warmup": warmup,
        "requests": [base64.b64encode(send_request(port, to)).decode() for to in scenario.numbers],
        "expect_status": scenario.expect_status,
        "expect_body": scenario.expect_body,
        "prime": True,
        "watch": watch,
        "rate": rate,
        "interleave": [
            {
                "port": other,
                "requests": [
                    base64.b64encode(send_request(other, to)).decode() for to in scenario.numbers
                ],
            }
            for other in interleave
        ],
    }
    spec_path = workdir / f"spec-{scenario.key}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out_path = workdir / f"loadgen-{scenario.key}.out"
    log_path = workdir / f"loadgen-{scenario.key}.err"
    with open(out_path, "wb") as out, open(log_path, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "loadgen.py"), str(spec_path)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=_child_setup(cpus),
        )
        processes.running.append((f"loadgen-{scenario.key}", process))
        limit = warmup + duration + LOADGEN_SLACK
        try:
            code = process.wait(limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
            raise BenchError(f"load generator for {scenario.key} ran past {limit:.0f} s") from None
        finally:
            processes.running.remove((f"loadgen-{scenario.key}", process))
    if code != 0:
        raise BenchError(f"load generator for {scenario.key} exited {code}:\n{tail(log_path)}")
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return result


def machine_busy(seconds: float = 0.5) -> float | None:
    """Percent of one CPU in use (all CPUs summed) over ``seconds``, before the bench starts."""

    def sample() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                values = [int(v) for v in handle.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        total = sum(values)
        return total - values[3] - values[4], total

    first = sample()
    time.sleep(seconds)
    second = sample()
    if first is None or second is None or second[1] <= first[1]:
        return None
    cpus = os.cpu_count() or 1
    return 100.0 * cpus * (second[0] - first[0]) / (second[1] - first[1])


NOISY_OTHER_CPU = 30.0
"""'other CPU' above this (percent of one CPU) flags a scenario's figures as noisy."""


def other_cpu(result: dict[str, Any]) -> float | None:
    """CPU time (percent of one CPU) the machine spent on anything but the bench's processes
    during the window: other tenants, other test runs, and the kernel's softirq share of
    loopback networking. Much more than the quiet-machine level means noisy figures."""
    busy: dict[str, float] = result.get("cpu_busy_percent") or {}
    if not busy:
        return None
    ours = float(sum(v for v in result["cpu_percent"].values() if v is not None))
    return max(0.0, float(sum(busy.values())) - ours)


def check_smoke(scenarios: Sequence[Scenario], results: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for scenario in scenarios:
        result = results.get(scenario.key)
        if result is None:
            problems.append(f"({scenario.key}) did not run")
            continue
        if result["requests"] == 0:
            problems.append(f"({scenario.key}) got no responses")
        if result["error_count"]:
            problems.append(
                f"({scenario.key}) {result['error_count']} errors: {result['errors']}, "
                f"{result['unexpected']} unexpected; e.g. {result['error_samples'][:2]}"
            )
        wanted = str(scenario.expect_status)
        other = {k: v for k, v in result["statuses"].items() if k != wanted}
        if other:
            problems.append(f"({scenario.key}) statuses other than {wanted}: {other}")
    return problems


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def render(
    scenarios: Sequence[Scenario],
    results: dict[str, dict[str, Any]],
    comparison: dict[str, float | None],
) -> str:
    rows = [
        ("scenario", "req/s", "p50 ms", "p99 ms", "errors", "stopgate CPU", "other CPU", "statuses")
    ]
    for scenario in scenarios:
        r = results[scenario.key]
        gateway_cpu = r["cpu_percent"].get("gateway")
        rows.append(
            (
                f"({scenario.key}) {scenario.title}",
                fmt(r["rps"], ",.0f"),
                fmt(r["p50_ms"]),
                fmt(r["p99_ms"]),
                str(r["error_count"]),
                "-" if scenario.target != "gateway" else f"{fmt(gateway_cpu, '.0f')}%",
                f"{fmt(r.get('other_cpu_percent'), '.0f')}%",
                " ".join(f"{k}x{v}" for k, v in r["statuses"].items()) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            row[i].ljust(widths[i]) if i in (0, 7) else row[i].rjust(widths[i])
            for i in range(len(row))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    ratio = comparison.get("b_over_a_rps")
    noisy = [
        s.key
        for s in scenarios
        if (results[s.key].get("other_cpu_percent") or 0.0) > NOISY_OTHER_CPU
    ]
    if noisy:
        lines.append(
            f"NOTE: other work used the CPUs during ({'), ('.join(noisy)}) "
            f"(other CPU > {NOISY_OTHER_CPU:.0f}%): those figures are noisy; "
            "rerun on a quiet machine"
        )
    lines.append("")
    lines.append(
        f"(b)/(a) throughput: {fmt(ratio, '.3f')}   "
        f"added latency (b)-(a): p50 {fmt(comparison.get('added_p50_ms'), '+.2f')} ms, "
        f"p99 {fmt(comparison.get('added_p99_ms'), '+.2f')} ms"
    )
    lines.append(
        f"(c)/(b) throughput: {fmt(comparison.get('c_over_b_rps'), '.3f')}   "
        "(blocked sends never reach the upstream but each one is written to the blocked log)"
    )
    return "\n".join(lines)


def compare(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    a, b, c = results.get("a"), results.get("b"), results.get("c")

    def diff(x: dict[str, Any] | None, y: dict[str, Any] | None, key: str) -> float | None:
        if x is None or y is None or x[key] is None or y[key] is None:
            return None
        return float(x[key] - y[key])

    def ratio(x: dict[str, Any] | None, y: dict[str, Any] | None) -> float | None:
        if x is None or y is None or not y["rps"]:
            return None
        return float(x["rps"] / y["rps"])

    return {
        "b_over_a_rps": ratio(b, a),
        "added_p50_ms": diff(b, a, "p50_ms"),
        "added_p99_ms": diff(b, a, "p99_ms"),
        "c_over_b_rps": ratio(c, b),
    }


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def event_loop_name() -> str:
    """The loop the helpers run on (they use uvloop when this interpreter has it)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def stopgate_command(source: str | None = None) -> list[str]:
    """The ``stopgate`` console script, or this interpreter running ``gateway.cli`` from another
    source tree (e.g. ``git worktree add /tmp/old <commit>``) to compare two versions."""
    if source:
        root = str(Path(source).resolve())
        if not (Path(root) / "gateway" / "cli.py").is_file():
            raise BenchError(f"--gateway-src {source}: no gateway/cli.py there")
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            "from gateway.cli import main; sys.exit(main())"
        )
        return [sys.executable, "-c", code]
    script = Path(sys.executable).parent / "stopgate"
    if script.exists():
        return [str(script)]
    found = shutil.which("stopgate")
    if found:
        return [found]
    return [sys.executable, "-m", "gateway.cli"]


def send_path_build(source: str | None = None) -> str:
    """How the gateway ``stopgate_command(source)`` runs will load its send path: compiled by
    mypyc or from source, and why (``gateway.native``), as its start-up log line says."""
    prefix = f"import sys; sys.path.insert(0, {str(Path(source).resolve())!r}); " if source else ""
    code = prefix + "import gateway.native as n; print(n.STATE.describe())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        return "unknown (a tree without gateway/native.py)"
    return done.stdout.strip()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Stopgate's Twilio send path against a direct-to-upstream baseline."
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per scenario"
    )
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--warmup", type=float, default=None, help="unmeasured seconds first (default 2)"
    )
    parser.add_argument("--recipients", type=int, default=1000, help="allowed recipients (b)")
    parser.add_argument("--blocked", type=int, default=8, help="opted-out pairs (c)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--store-url",
        help="run on this store instead of a temporary SQLite file, e.g."
        " postgresql://postgres@127.0.0.1:5432/test (a schema of its own is made and dropped)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="consent records of other customers written into the store before the run",
    )
    parser.add_argument(
        "--store-dir", help="where the temporary SQLite store lives (default: the temp dir)"
    )
    parser.add_argument(
        "--gateway-src",
        metavar="DIR",
        help="run the gateway from this source tree instead of the installed one (A/B runs)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="~1 s per scenario, 4 connections; exit 1 unless every answer is the expected one",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration = 1.0
        args.connections = min(args.connections, 4)
        args.recipients = min(args.recipients, 200)
        args.warmup = 0.3 if args.warmup is None else args.warmup
    if args.warmup is None:
        args.warmup = 2.0
    if args.duration <= 0 or args.connections < 1 or args.recipients < 1 or args.blocked < 1:
        parser.error("duration, connections, recipients and blocked must be positive")
    return args


def store_description(info: dict[str, Any]) -> str:
    if info.get("store") == "postgresql":
        seeded = info.get("seeded_records", 0)
        return (
            f"PostgreSQL store with {seeded:,} seeded records (its server's CPU shows as"
            " 'other CPU')"
        )
    seeded = info.get("seeded_records")
    extra = f" with {seeded:,} seeded records" if seeded else ""
    return f"SQLite store on {info.get('store_filesystem', '?')}{extra}"


def seed_store(url: str, records: int) -> float:
    """Write ``records`` consent records of other customers through the store's bulk write;
    returns rows/s."""
    sys.path.insert(0, str(HERE.parent))
    from gateway.store import store_from_url
    from gateway.store.base import ConsentChange
    from policy.consent import OptStatus, Source

    async def run() -> float:
        store = store_from_url(url)
        await store.open()
        started = time.perf_counter()
        try:
            for start in range(0, records, 10_000):
                await store.apply(
                    [
                        ConsentChange(
                            "+16505550100",
                            f"+1{3012000000 + n}",
                            OptStatus.OPT_OUT if n % 3 else OptStatus.OPT_IN,
                            Source.API,
                            actor="bench-seed",
                            modified_us=1_700_000_000_000_000 + n,
                        )
                        for n in range(start, min(records, start + 10_000))
                    ]
                )
        finally:
            await store.close()
        return records / (time.perf_counter() - started)

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_cpus(not args.no_pin)
    allowed = tuple(number(ALLOWED_BASE, i) for i in range(args.recipients))
    blocked = tuple(number(BLOCKED_BASE, i) for i in range(args.blocked))
    scenarios = (
        Scenario("a", "direct to upstream (baseline)", "upstream", allowed, 201, None),
        Scenario("b", "via Stopgate, allowed, cache warm", "gateway", allowed, 201, None),
        Scenario("c", "via Stopgate, opted out (400/21610)", "gateway", blocked, 400, "21610"),
    )
    admin_token = secrets.token_urlsafe(24)
    processes = Processes()
    results: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {}
    started = time.monotonic()
    busy_before = machine_busy()
    info["busy_before_percent"] = busy_before
    if busy_before is not None and busy_before > NOISY_OTHER_CPU:
        print(
            f"warning: the machine is busy before the bench starts ({busy_before:.0f}% of a CPU "
            "in use by other processes); figures will be noisy",
            file=sys.stderr,
        )
    try:
        with (
            terminate_on_sigterm(),
            tempfile.TemporaryDirectory(prefix="stopgate-bench-", dir=args.store_dir) as tmp,
            contextlib.ExitStack() as stack,
        ):
            workdir = Path(tmp)
            try:
                upstream_port = free_port()
                upstream_log = workdir / "upstream.log"
                upstream = processes.start(
                    "upstream",
                    [sys.executable, str(HERE / "fast_upstream.py"), "--port", str(upstream_port)],
                    cpus=plan.upstream,
                    log=upstream_log,
                )
                wait_for_port(upstream_port, upstream, "fast upstream", upstream_log)

                env = {k: v for k, v in os.environ.items() if not k.startswith("STOPGATE_")}
                upstream_url = f"http://{HOST}:{upstream_port}"
                env.update(
                    STOPGATE_TWILIO_UPSTREAM=upstream_url,
                    STOPGATE_RINGCENTRAL_UPSTREAM=upstream_url,
                    STOPGATE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                    STOPGATE_ADMIN_TOKEN=admin_token,
                )
                gateway_port = free_port()
                gateway_log = workdir / "stopgate.log"
                store = workdir / "bench.db"
                store_url = f"sqlite:///{store}"
                if args.store_url:
                    store_url = stack.enter_context(postgres_schema(args.store_url))
                if args.seed:
                    seeded = seed_store(store_url, args.seed)
                    info["seeded_records"] = args.seed
                    info["seed_rows_per_s"] = seeded
                    print(f"seeded {args.seed:,} records ({seeded:,.0f} rows/s)", file=sys.stderr)
                info["store"] = store_url.split("://", 1)[0]
                gateway = processes.start(
                    "stopgate",
                    [
                        *stopgate_command(args.gateway_src),
                        "serve",
                        "--listen",
                        f"{HOST}:{gateway_port}",
                        "--store",
                        store_url,
                    ],
                    cpus=plan.gateway,
                    env=env,
                    log=gateway_log,
                )
                wait_ready(gateway_port, gateway, gateway_log)
                opt_out(gateway_port, admin_token, blocked)
                preflight(gateway_port, allowed[0], blocked[0])
                if not args.store_url:
                    info["store_filesystem"] = filesystem_of(store)
                info["gateway_rss_kib_start"] = rss_kib(gateway.pid)

                for scenario in scenarios:
                    port = upstream_port if scenario.target == "upstream" else gateway_port
                    watch = {"upstream": upstream.pid}
                    if scenario.target == "gateway":
                        watch["gateway"] = gateway.pid
                    print(
                        f"running ({scenario.key}) {scenario.title} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    results[scenario.key] = run_loadgen(
                        processes,
                        scenario,
                        port,
                        connections=args.connections,
                        duration=args.duration,
                        warmup=args.warmup,
                        watch=watch,
                        cpus=plan.loadgen,
                        workdir=workdir,
                    )
                    result = results[scenario.key]
                    result["gateway_rss_kib_after"] = rss_kib(gateway.pid)
                    result["other_cpu_percent"] = other_cpu(result)
                    if gateway.poll() is not None:
                        raise BenchError(
                            f"stopgate died during ({scenario.key}):\n{tail(gateway_log)}"
                        )
                gateway_errors = [
                    line
                    for line in gateway_log.read_text(
                        encoding="utf-8", errors="replace"
                    ).splitlines()
                    if " ERROR " in line or "Traceback" in line
                ]
                info["gateway_error_lines"] = len(gateway_errors)
                info["gateway_error_sample"] = gateway_errors[:5]
            finally:
                # Inside the with: every process is gone before its temp dir is removed.
                processes.stop_all()
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1

    comparison = compare(results)
    loop = next(iter(results.values()))["event_loop"] if results else "?"
    header = [
        f"Stopgate send-path bench: {args.connections} connections, {args.duration:g} s measured "
        f"per scenario after {args.warmup:g} s warm-up, closed loop, HTTP/1.1 keep-alive",
        f"upstream: bench/fast_upstream.py (asyncio Protocol on {event_loop_name()}, static "
        "600-byte Twilio message JSON, 201)",
        f"load generator: bench/loadgen.py (raw asyncio streams on {loop}, pre-built requests; "
        f"(b) rotates over {len(allowed)} recipients, (c) over {len(blocked)} opted-out pairs)",
        f"gateway: stopgate serve{' from ' + args.gateway_src if args.gateway_src else ''}, "
        f"{store_description(info)}; "
        f"CPU pinning: {plan.note}",
        "",
    ]
    report = "\n".join(header) + render(scenarios, results, comparison)
    if info.get("gateway_error_lines"):
        report += f"\nstopgate logged {info['gateway_error_lines']} ERROR/Traceback lines, e.g.:\n"
        report += "\n".join(f"  {line[:200]}" for line in info["gateway_error_sample"])
    print(report)
    elapsed = time.monotonic() - started

    if args.json:
        document = {
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "connections": args.connections,
                "recipients": len(allowed),
                "blocked_pairs": len(blocked),
                "smoke": args.smoke,
                "gateway_src": args.gateway_src,
            },
            "environment": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus_available": sorted(os.sched_getaffinity(0)),
                "cpu_pinning": plan.note,
                "upstream": "bench/fast_upstream.py (asyncio Protocol, HTTP/1.1 keep-alive)",
                "upstream_event_loop": event_loop_name(),
                "load_generator": "bench/loadgen.py (closed loop, raw asyncio streams)",
                "load_generator_event_loop": loop,
                **info,
            },
            "scenarios": {
                s.key: {"title": s.title, "target": s.target, **results[s.key]} for s in scenarios
            },
            "comparison": comparison,
            "elapsed_s": elapsed,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    if args.smoke:
        problems = check_smoke(scenarios, results)
        if problems:
            print("smoke FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print(f"smoke OK ({elapsed:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
