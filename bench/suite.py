"""The bench suite: Stopgate side by side with real baselines, in one run, on loopback.

    .venv/bin/python bench/suite.py [--duration 6] [--quick] [--json out.json]
                                    [--records 1000000] [--postgres URL] [--only a,b,d-twilio]
                                    [--rounds 3] [--cycles 20] [--slice 1]

Starts everything on 127.0.0.1 (nginx from Debian with a generated configuration in a temporary
directory, a bare aiohttp proxy, ``stopgate serve`` in several configurations, the carrier
simulator) and measures, each for a bounded time:

(a)  nginx answering a static Twilio message JSON: the upstream, direct;
(b)  nginx ``proxy_pass`` to (a), keep-alive to the upstream;
(c)  ``bench/passthrough_proxy.py``: a bare aiohttp pass-through proxy, one shared
     ``ClientSession`` - the Python floor;
(d)  Stopgate in front of (a), cache warm: Twilio ``Messages.json`` (form) and RingCentral
     ``…/sms`` (JSON), footer off and ``always``;
(e)  Stopgate on a store of ``--records`` consent records (default 1,000,000), freshly started
     (cold cache), every send to a recipient not asked for before: SQLite and PostgreSQL;
(f)  Stopgate ``--workers 2`` (SQLite, cache warm, Twilio);
(g)  an inbound STOP burst: RingCentral webhooks straight to Stopgate (2xx = the opt-out is
     durable), ``--connections`` at a time on keep-alive connections opened by a warm-up wave,
     each webhook's bytes made beforehand and written to a plain socket (its time: from that
     write to its answer's last byte), and the time until the carrier simulator receives each
     confirmation;
(ol) open loop at ``--rate`` sends/s (default 500) offered at a constant rate, direct to the
     upstream and through Stopgate, interleaved in one run (each path offered the rate, its
     sends half an interval after the other's): the latency Stopgate adds, both paths measured
     at the same moments.

Closed-loop load is ``wrk`` with ``bench/wrk_send.lua`` (the request bytes of each dialect);
open-loop load is ``bench/loadgen.py`` in its constant-rate mode. The closed-loop scenarios
(a)-(d) and (f) run ``--rounds`` times (default 3), one after another, and the table shows the
round whose (d) ÷ (c) ratio is the median. The req/s ratios the targets judge ((d) ÷ (c) in both
dialects, (f) ÷ (b)) come from a paired measurement: b, c, d and f, all started, run in turn for
``--slice`` seconds each (default 1), in ``--cycles`` cycles (default 20), every cycle in the
opposite order of the one before, while the processes not being measured are stopped; each
scenario's req/s is its requests over its seconds, summed over the cycles. On a machine whose
speed swings within seconds, that way every scenario meets the same slow drifts (a swing within
one cycle still falls on one scenario, and the per-cycle ratios show how far they spread); the
rounds' ratios are printed beside it. Each slice starts with one unmeasured send. The system
under test is pinned to one CPU and the harness (upstream, load generator, simulator) to another
when two are available (``--workers 2`` gets both). For every scenario: req/s, p50/p99/p99.9
latency, CPU microseconds per request (the process tree's user+system time from /proc over the
run, divided by the requests), peak RSS (``VmHWM``, summed over the process tree); every figure
also as a ratio to (b) and to (c) of the same run. ``--quick`` runs the whole suite in about a
minute (tiny figures: it only proves the suite works; CI runs it).

nginx and wrk come from Debian's packages: the suite installs whichever is missing before it
starts (``apt-get``, as root or with ``sudo``, as ``scripts/system-deps`` does; ``--no-install``
stops with an error instead). PostgreSQL is the one at ``--postgres`` (default: the CI server);
when it cannot be reached, (e) on PostgreSQL is reported as skipped, and ``--require-all`` turns
a skip into a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.carriersim.state import SimCredentials

from fast_upstream import ACCOUNT_RESOURCE, MESSAGE_RESOURCE  # the bench dir is on sys.path
from loadgen import cpu_seconds
from pg_schema import postgres_schema
from send_path import (
    ACCOUNT_SID,
    ALLOWED_BASE,
    AUTH_TOKEN,
    BUSINESS_NUMBER,
    HERE,
    HOST,
    MESSAGE_TEXT,
    STOP_TIMEOUT,
    BenchError,
    Processes,
    Scenario,
    _child_setup,
    event_loop_name,
    free_port,
    http,
    machine_busy,
    number,
    run_loadgen,
    seed_store,
    send_path_build,
    stopgate_command,
    tail,
    terminate_on_sigterm,
    wait_for_port,
    wait_ready,
)

TWILIO_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
RC_PATH = "/restapi/v1.0/account/~/extension/~/sms"
RC_CREDENTIAL_CHECK = "/restapi/v1.0/account/~/extension/~"
RC_TOKEN = "Bearer bench-ringcentral-access-token"
TWILIO_AUTH = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
WARM_RECIPIENTS = 1000
SEED_FIRST = 3012000000
"""``send_path.seed_store`` writes +1(SEED_FIRST + n), OptIn when n % 3 == 0, else OptOut."""
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
WRK_SLACK = 30.0
NOISY_BUSY_PERCENT = 30.0
PREFLIGHT_TIMEOUT = 30.0
"""Seconds the first send may take (generous: a loaded machine, a store just written)."""
INBOUND_CUSTOMER_BASE = 6505552000
CONFIRMATION_TIMEOUT = 30.0
FIGURES = ("rps", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_request", "peak_rss_mib")


@dataclass(frozen=True, slots=True)
class Pinning:
    sut: frozenset[int] | None
    """The system under test: the proxy or gateway of a scenario."""
    harness: frozenset[int] | None
    """Upstream, load generator, simulator."""
    note: str


def plan_pinning(pin: bool) -> Pinning:
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        why = "not pinned" if not pin else f"not pinned: {len(available)} CPU available"
        return Pinning(None, None, why)
    return Pinning(
        frozenset(available[:1]),
        frozenset(available[1:]),
        f"system under test on CPU {available[0]}; upstream, load generator and simulator on "
        f"CPU {','.join(map(str, available[1:]))} (--workers 2: every CPU)",
    )


# ---- processes: trees, CPU, memory --------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (nginx workers, ``--workers`` children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as handle:
                    queue.extend(int(child) for child in handle.read().split())
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) or 0.0 for p in process_tree(pid))


def tree_peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (``VmHWM``) summed over the process tree, in MiB."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{p}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024 if total else None


def stop_process(processes: Processes, process: subprocess.Popen[bytes]) -> None:
    """End one process this suite started (and forget it)."""
    if process.poll() is None:
        process.terminate()
        _signal_tree(process, signal.SIGCONT)  # a stopped process acts on SIGTERM only then
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    processes.running[:] = [(n, p) for n, p in processes.running if p is not process]


def pin_tree(pid: int, cpus: frozenset[int] | None) -> None:
    if cpus:
        for p in process_tree(pid):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(p, cpus)


def _signal_tree(process: subprocess.Popen[bytes], number: signal.Signals) -> None:
    """Stop or continue a process and its descendants (nginx's workers, ``--workers``)."""
    for pid in process_tree(process.pid):
        with contextlib.suppress(OSError):
            os.kill(pid, number)


# ---- nginx --------------------------------------------------------------------------------


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def install_missing_tools() -> None:
    """nginx and wrk, from Debian's packages, when either is missing."""
    missing = [
        package
        for package, found in (("nginx", nginx_binary()), ("wrk", shutil.which("wrk")))
        if found is None
    ]
    if not missing:
        return
    print(f"installing {' and '.join(missing)} from Debian's packages ...", flush=True)
    # Through ``env``: sudo resets the environment it is given.
    prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    if os.geteuid() != 0:
        prefix.insert(0, "sudo")
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        try:
            done = subprocess.run([*prefix, *command], capture_output=True, text=True, check=False)
        except OSError as exc:
            raise BenchError(f"cannot install {', '.join(missing)}: {exc}") from None
        if done.returncode != 0:
            raise BenchError(
                f"cannot install {', '.join(missing)}: `{' '.join(command)}` exited"
                f" {done.returncode}: {done.stderr.strip()[-500:]}"
            )


def _nginx_literal(document: dict[str, Any]) -> str:
    text = json.dumps(document, separators=(",", ":"))
    if "'" in text or "$" in text or "\\" in text:
        raise BenchError("a static body must not need escaping in nginx.conf")
    return f"'{text}'"


RC_MESSAGE = {
    "id": 2104000001,
    "uri": "https://platform.ringcentral.com/restapi/v1.0/account/400000001/extension/"
    "400000101/message-store/2104000001",
    "type": "SMS",
    "direction": "Outbound",
    "messageStatus": "Queued",
    "from": {"phoneNumber": BUSINESS_NUMBER},
    "to": [{"phoneNumber": "+16505551000"}],
    "subject": MESSAGE_TEXT,
}


def nginx_config(workdir: Path, name: str, port: int, upstream_port: int | None) -> Path:
    """One worker, logs and temp files in ``workdir`` (runs without root).

    Without ``upstream_port``: the upstream, answering like the carriers - a Twilio message
    (201) on any POST, a RingCentral message (200) on ``…/sms``, the extension (200) on the
    RingCentral credential check. With it: ``proxy_pass`` there, keep-alive both sides."""
    root = workdir / name
    root.mkdir()
    temp = "\n".join(
        f"    {kind}_temp_path {root}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if upstream_port is None:
        locations = f"""
        location = {RC_CREDENTIAL_CHECK} {{ return 200 {_nginx_literal(ACCOUNT_RESOURCE)}; }}
        location ~ /sms$ {{ return 200 {_nginx_literal(RC_MESSAGE)}; }}
        location / {{ return 201 {_nginx_literal(MESSAGE_RESOURCE)}; }}"""
        upstream_block = ""
    else:
        locations = """
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }"""
        upstream_block = (
            f"    upstream backend {{ server {HOST}:{upstream_port}; keepalive 64; }}\n"
        )
    config = f"""worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_requests 10000000;
{temp}
{upstream_block}    server {{
        listen {HOST}:{port} backlog=1024;{locations}
    }}
}}
"""
    path = root / "nginx.conf"
    path.write_text(config, encoding="utf-8")
    return path


def start_nginx(
    processes: Processes,
    binary: str,
    workdir: Path,
    name: str,
    upstream_port: int | None,
    cpus: frozenset[int] | None,
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = nginx_config(workdir, name, port, upstream_port)
    log = workdir / f"{name}.log"
    command = [binary, "-p", str(config.parent), "-c", str(config), "-e", str(log)]
    process = processes.start(name, command, cpus=cpus, log=log)
    wait_for_port(port, process, name, log)
    return process, port


# ---- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """What a wrk run sends: one dialect's sends to +1(first + step*k), k over 0..count-1."""

    dialect: str
    first: int
    step: int
    count: int
    expect_status: int

    def lua_args(self, threads: int) -> list[str]:
        if self.dialect == "twilio":
            auth, path = TWILIO_AUTH, TWILIO_PATH
        else:
            auth, path = RC_TOKEN, RC_PATH
        return [
            self.dialect,
            auth,
            path,
            BUSINESS_NUMBER,
            str(self.first),
            str(self.step),
            str(self.count),
            str(threads),
        ]


def warm_load(dialect: str) -> Load:
    return Load(dialect, ALLOWED_BASE, 1, WARM_RECIPIENTS, 201 if dialect == "twilio" else 200)


def one_send(port: int, dialect: str, to: str) -> tuple[int, bytes, str]:
    """One send, as wrk_send.lua builds it: status, body, decision header."""
    import urllib.error
    import urllib.parse
    import urllib.request

    if dialect == "twilio":
        body = urllib.parse.urlencode({"To": to, "From": BUSINESS_NUMBER, "Body": MESSAGE_TEXT})
        headers = {
            "Authorization": TWILIO_AUTH,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        path = TWILIO_PATH
    else:
        body = json.dumps(
            {
                "from": {"phoneNumber": BUSINESS_NUMBER},
                "to": [{"phoneNumber": to}],
                "text": MESSAGE_TEXT,
            }
        )
        headers = {"Authorization": RC_TOKEN, "Content-Type": "application/json"}
        path = RC_PATH
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data=body.encode(), method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=PREFLIGHT_TIMEOUT) as response:
            return response.status, response.read(), response.headers.get("X-Stopgate-Decision", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("X-Stopgate-Decision", "")


def preflight(port: int, load: Load, *, gateway: bool) -> None:
    """One send before the load, so a broken setup fails in its own words (to the last
    recipient of the rotation, which a run reaches last if at all: a cold cache stays cold)."""
    to = f"+1{load.first + load.step * (load.count - 1)}"
    try:
        status, body, decision = one_send(port, load.dialect, to)
    except OSError as exc:
        raise BenchError(f"preflight {load.dialect} send to {to}: {exc!r}") from None
    if status != load.expect_status or (gateway and not decision.startswith("allowed")):
        raise BenchError(
            f"preflight {load.dialect} send to {to}: expected {load.expect_status} (allowed), "
            f"got {status} {decision!r}: {body[:300]!r}"
        )


# ---- wrk ----------------------------------------------------------------------------------


def run_wrk(
    processes: Processes,
    url: str,
    load: Load,
    *,
    connections: int,
    seconds: int,
    cpus: frozenset[int] | None,
    log: Path,
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (the suite installs it unless --no-install)")
    threads = 1 if cpus and len(cpus) == 1 else 2
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "wrk_send.lua"),
        url,
        "--",
        *load.lua_args(threads),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(cpus),
        )
        processes.running.append(("wrk", process))
        try:
            code = process.wait(seconds + WRK_SLACK)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
            raise BenchError(f"wrk ran past {seconds + WRK_SLACK:.0f} s") from None
        finally:
            processes.running.remove(("wrk", process))
    output = log.read_text(encoding="utf-8", errors="replace")
    marker = next((line for line in output.splitlines() if line.startswith("WRK_RESULT ")), None)
    if code != 0 or marker is None:
        raise BenchError(f"wrk exited {code}:\n{output[-2000:]}")
    result: dict[str, Any] = json.loads(marker.split(" ", 1)[1])
    return result


# ---- results ------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    key: str
    title: str
    figures: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def measure_wrk(
    processes: Processes,
    sut: subprocess.Popen[bytes],
    port: int,
    load: Load,
    args: argparse.Namespace,
    pinning: Pinning,
    workdir: Path,
    key: str,
    *,
    warmup: bool,
) -> dict[str, Any]:
    """A wrk run against ``port`` (after an unmeasured one when ``warmup``), with the CPU time
    of ``sut``'s process tree over the measured run."""
    url = f"http://{HOST}:{port}"
    if warmup and args.warmup > 0:
        run_wrk(
            processes,
            url,
            load,
            connections=args.connections,
            seconds=max(1, round(args.warmup)),
            cpus=pinning.harness,
            log=workdir / f"wrk-{key}-warmup.log",
        )
    cpu_before = tree_cpu_seconds(sut.pid)
    result = run_wrk(
        processes,
        url,
        load,
        connections=args.connections,
        seconds=max(1, round(args.duration)),
        cpus=pinning.harness,
        log=workdir / f"wrk-{key}.log",
    )
    cpu = tree_cpu_seconds(sut.pid) - cpu_before
    requests = result["requests"]
    latency = result["latency_us"]
    errors = sum(result["errors"].values())
    if sut.poll() is not None:
        raise BenchError(f"the process under test died during ({key})")
    return {
        "figures": {
            "rps": requests / (result["duration_us"] / 1e6) if result["duration_us"] else None,
            "p50_ms": latency["p50"] / 1000,
            "p99_ms": latency["p99"] / 1000,
            "p999_ms": latency["p999"] / 1000,
            "cpu_us_per_request": cpu * 1e6 / requests if requests else None,
            "peak_rss_mib": tree_peak_rss_mib(sut.pid),
        },
        "details": {"requests": requests, "errors": result["errors"], "error_count": errors},
    }


def ratios(rows: dict[str, Row], base: str) -> dict[str, dict[str, float | None]]:
    reference = rows.get(base)
    out: dict[str, dict[str, float | None]] = {}
    for key, row in rows.items():
        out[key] = {}
        for name in FIGURES:
            value = row.figures.get(name)
            ref = reference.figures.get(name) if reference else None
            out[key][name] = value / ref if value is not None and ref else None
    return out


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[tuple[str, ...]], left: Sequence[int] = (0,)) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(rows: dict[str, Row], to_b: dict[str, Any], to_c: dict[str, Any]) -> str:
    figures = [("scenario", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU µs/req", "peak RSS MiB")]
    ratio_rows = [
        (
            "× (b) nginx proxy_pass / × (c) aiohttp floor",
            "req/s",
            "p50",
            "p99",
            "p99.9",
            "CPU/req",
            "RSS",
        )
    ]
    for key, row in rows.items():
        name = f"({key}) {row.title}"
        if row.skipped:
            figures.append((name, f"skipped: {row.skipped}", "", "", "", "", ""))
            continue
        f = row.figures
        figures.append(
            (
                name,
                fmt(f.get("rps"), ",.0f"),
                fmt(f.get("p50_ms"), ".2f"),
                fmt(f.get("p99_ms"), ".2f"),
                fmt(f.get("p999_ms"), ".2f"),
                fmt(f.get("cpu_us_per_request"), ",.0f"),
                fmt(f.get("peak_rss_mib"), ",.1f"),
            )
        )
        ratio_rows.append(
            (
                f"({key})",
                *(f"{fmt(to_b[key][n], '.2f')} / {fmt(to_c[key][n], '.2f')}" for n in FIGURES),
            )
        )
    return table(figures) + "\n\nratios (to (b) / to (c)):\n" + table(ratio_rows)


# ---- the scenarios ------------------------------------------------------------------------


@dataclass(slots=True)
class Suite:
    args: argparse.Namespace
    pinning: Pinning
    workdir: Path
    processes: Processes
    stack: contextlib.ExitStack
    rows: dict[str, Row] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    upstream: subprocess.Popen[bytes] | None = None
    upstream_port: int = 0
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    round: int = 1
    """The round of the closed-loop scenarios being run (see ``--rounds``)."""

    def wanted(self, key: str) -> bool:
        only = self.args.only
        return not only or any(key == k or key.startswith(k + "-") for k in only)

    def row(self, key: str, title: str) -> Row:
        self.rows[key] = Row(key, title)
        print(f"running ({key}) {title} ...", file=sys.stderr, flush=True)
        return self.rows[key]

    def closed_loop(
        self,
        key: str,
        title: str,
        sut: subprocess.Popen[bytes],
        port: int,
        load: Load,
        *,
        gateway: bool,
        warmup: bool = True,
    ) -> Row:
        row = self.row(key, title)
        preflight(port, load, gateway=gateway)
        before = cache_counters(port) if gateway else None
        measured = measure_wrk(
            self.processes,
            sut,
            port,
            load,
            self.args,
            self.pinning,
            self.workdir,
            key,
            warmup=warmup,
        )
        row.figures, row.details = measured["figures"], measured["details"]
        after = cache_counters(port) if gateway else None
        if before and after:
            lookups = (after[0] - before[0]) + (after[1] - before[1])
            row.details["cache_miss_ratio"] = (after[1] - before[1]) / lookups if lookups else None
        if row.details["error_count"]:
            row.details["note"] = "errors: " + json.dumps(row.details["errors"])
        return row

    def gateway(
        self,
        name: str,
        store_url: str,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        upstream_url: str | None = None,
    ) -> tuple[subprocess.Popen[bytes], int]:
        port = port or free_port()
        upstream_url = upstream_url or f"http://{HOST}:{self.upstream_port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STOPGATE_")}
        environment.update(
            STOPGATE_TWILIO_UPSTREAM=upstream_url,
            STOPGATE_RINGCENTRAL_UPSTREAM=upstream_url,
            STOPGATE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            STOPGATE_ADMIN_TOKEN=self.admin_token,
            STOPGATE_SPOOL_PATH=str(self.workdir / f"{name}-spool.jsonl"),
            **(env or {}),
        )
        extra = dict(item.partition("=")[::2] for item in self.args.env)
        clash = sorted(k for k in extra if k in environment and k.startswith("STOPGATE_"))
        if clash:
            # e.g. STOPGATE_FOOTER would turn the footer-off rows footer-on without saying so.
            raise BenchError(f"--env cannot set what the suite sets for {name}: {clash}")
        environment.update(extra)
        command = [
            *stopgate_command(self.args.gateway_src),
            "serve",
            "--listen",
            f"{HOST}:{port}",
            "--store",
            store_url,
        ]
        if workers > 1:
            command += ["--workers", str(workers)]
        log = self.workdir / f"{name}.log"
        process = self.processes.start(
            name,
            command,
            cpus=None if workers > 1 else self.pinning.sut,
            env=environment,
            log=log,
        )
        wait_ready(port, process, log)
        return process, port

    def floor(self, name: str) -> tuple[subprocess.Popen[bytes], int]:
        """(c)'s bare aiohttp pass-through proxy in front of the upstream, started and listening."""
        port = free_port()
        log = self.workdir / f"{name}.log"
        proxy = self.processes.start(
            name,
            [
                sys.executable,
                str(HERE / "passthrough_proxy.py"),
                "--port",
                str(port),
                "--upstream",
                f"http://{HOST}:{self.upstream_port}",
            ],
            cpus=self.pinning.sut,
            log=log,
        )
        wait_for_port(port, proxy, "pass-through proxy", log)
        return proxy, port

    def nginx_with_upstream(self) -> str:
        """nginx's binary, with (a), the upstream every scenario forwards to, started once."""
        binary = nginx_binary()
        if binary is None:
            raise BenchError("nginx is not installed (the suite installs it unless --no-install)")
        if self.upstream is None:
            self.upstream, self.upstream_port = start_nginx(
                self.processes, binary, self.workdir, "nginx-upstream", None, self.pinning.harness
            )
        return binary

    # (a) (b) (c)
    def baselines(self) -> None:
        binary = self.nginx_with_upstream()
        load = warm_load("twilio")
        if self.wanted("a"):
            # Here the upstream is what is measured: it gets the CPU of the system under test.
            pin_tree(self.upstream.pid, self.pinning.sut)
            try:
                self.closed_loop(
                    "a",
                    "nginx static JSON (upstream, direct)",
                    self.upstream,
                    self.upstream_port,
                    load,
                    gateway=False,
                )
            finally:
                pin_tree(self.upstream.pid, self.pinning.harness)
        if self.wanted("b"):
            proxy, port = start_nginx(
                self.processes,
                binary,
                self.workdir,
                f"nginx-proxy-{self.round}",
                self.upstream_port,
                self.pinning.sut,
            )
            self.closed_loop("b", "nginx proxy_pass to (a)", proxy, port, load, gateway=False)
            stop_process(self.processes, proxy)
        if self.wanted("c"):
            proxy, port = self.floor("passthrough")
            self.closed_loop(
                "c", "bare aiohttp pass-through proxy (floor)", proxy, port, load, gateway=False
            )
            stop_process(self.processes, proxy)

    # (d) and the open loop
    def warm(self) -> None:
        for footer in ("off", "always"):
            keys = [
                f"d-{d}{'-footer' if footer != 'off' else ''}" for d in ("twilio", "ringcentral")
            ]
            open_loop = footer == "off" and self.wanted("ol") and self.round == 1
            if not any(self.wanted(k) for k in keys) and not open_loop:
                continue
            gateway, port = self.gateway(
                f"stopgate-footer-{footer}",
                f"sqlite:///{self.workdir / f'warm-{footer}.db'}",
                env={"STOPGATE_FOOTER": footer},
            )
            for key, dialect in zip(keys, ("twilio", "ringcentral"), strict=True):
                if self.wanted(key):
                    self.closed_loop(
                        key,
                        f"Stopgate {dialect}, cache warm, footer {footer}",
                        gateway,
                        port,
                        warm_load(dialect),
                        gateway=True,
                    )
            if open_loop:
                self.open_loop(gateway, port)
            stop_process(self.processes, gateway)

    def open_loop(self, gateway: subprocess.Popen[bytes], port: int) -> None:
        """Both open-loop rows from one interleaved run: the direct path and the path through
        Stopgate are each offered ``--rate``, their sends staggered by half an interval, so the
        two latencies meet the same machine at the same moments."""
        recipients = tuple(number(ALLOWED_BASE, i) for i in range(WARM_RECIPIENTS))
        assert self.upstream is not None
        title = f"open loop {self.args.rate:g}/s"
        warmup = max(self.args.warmup, 1.0)
        cpu_before = {
            "upstream": tree_cpu_seconds(self.upstream.pid),
            "gateway": tree_cpu_seconds(gateway.pid),
        }
        result = run_loadgen(
            self.processes,
            Scenario("ol", title, "", recipients, 201, None),
            self.upstream_port,
            connections=self.args.connections * 2,
            duration=self.args.duration,
            warmup=warmup,
            watch={},
            cpus=self.pinning.harness,
            workdir=self.workdir,
            rate=self.args.rate,
            interleave=(port,),
        )
        # The upstream serves both paths, a direct send and a forwarded one alike (about): half
        # its CPU is the direct path's.
        cpu = {
            "upstream": (tree_cpu_seconds(self.upstream.pid) - cpu_before["upstream"]) / 2,
            "gateway": tree_cpu_seconds(gateway.pid) - cpu_before["gateway"],
        }
        for key, path, target, measured in (
            ("ol-direct", "direct to (a)", result["targets"][0], self.upstream),
            ("ol-stopgate", "through Stopgate", result["targets"][1], gateway),
        ):
            row = self.row(key, f"{title}, {path}")
            # Sent on this path, over warm-up and window alike (both at the same rate).
            sent = target["requests"] + self.args.rate * warmup
            row.figures = {
                "rps": target["rps"],
                "p50_ms": target["p50_ms"],
                "p99_ms": target["p99_ms"],
                "p999_ms": target["p999_ms"],
                "cpu_us_per_request": (
                    cpu["gateway" if measured is gateway else "upstream"] * 1e6 / sent
                    if sent
                    else None
                ),
                "peak_rss_mib": tree_peak_rss_mib(measured.pid),
            }
            row.details = {
                "requests": target["requests"],
                "offered_rps": self.args.rate,
                "interleaved_with": "ol-stopgate" if key == "ol-direct" else "ol-direct",
                "error_count": target["error_count"],
                "errors": target["errors"],
                "statuses": target["statuses"],
                "backlog_at_end": target["backlog_at_end"],
            }

    # (e)
    def cold(self) -> None:
        stores: list[tuple[str, Callable[[], str]]] = [
            ("e-sqlite", lambda: f"sqlite:///{self.workdir / 'seeded.db'}"),
        ]
        if self.args.postgres:
            stores.append(
                (
                    "e-postgresql",
                    lambda: self.stack.enter_context(postgres_schema(self.args.postgres)),
                )
            )
        elif self.wanted("e-postgresql"):
            self.rows["e-postgresql"] = Row(
                "e-postgresql", "Stopgate postgresql, cache cold", skipped="--postgres ''"
            )
        records = self.args.records
        # Sends go to the OptIn records, each recipient once: every lookup misses the cache.
        load = Load("twilio", SEED_FIRST, 3, (records + 2) // 3, 201)
        for key, make_url in stores:
            if not self.wanted(key):
                continue
            backend = key.split("-", 1)[1]
            title = f"Stopgate {backend}, {records:,} records, cache cold"
            try:
                url = make_url()
            except (OSError, ImportError) as exc:
                self.rows[key] = Row(key, title, skipped=f"no PostgreSQL: {exc}")
                continue
            except Exception as exc:  # asyncpg's own errors: the server is not there
                self.rows[key] = Row(key, title, skipped=f"no PostgreSQL: {exc!r}")
                continue
            print(f"seeding {records:,} records into {backend} ...", file=sys.stderr, flush=True)
            rate = seed_store(url, records)
            self.info[f"seed_rows_per_s_{backend}"] = rate
            gateway, port = self.gateway(f"stopgate-{key}", url)
            row = self.closed_loop(key, title, gateway, port, load, gateway=True, warmup=False)
            row.details["seed_rows_per_s"] = rate
            stop_process(self.processes, gateway)

    # (f)
    def workers(self) -> None:
        if not self.wanted("f"):
            return
        gateway, port = self.gateway(
            "stopgate-workers-2", f"sqlite:///{self.workdir / 'workers.db'}", workers=2
        )
        self.closed_loop(
            "f",
            "Stopgate --workers 2, twilio, cache warm",
            gateway,
            port,
            warm_load("twilio"),
            gateway=True,
        )
        stop_process(self.processes, gateway)

    # The judged throughput ratios, measured in alternation
    def paired(self) -> dict[str, Any] | None:
        """b, c, d (both dialects, footer off) and f measured in ``--cycles`` cycles of
        ``--slice`` seconds each, one after another, every cycle in the opposite order of the
        one before; each scenario's req/s is its requests over its seconds summed over the
        cycles. The machine's speed swings within seconds (the floor alone went from 1,658 to
        3,142 req/s and back to 1,592 within 30 s, measured in 2 s runs), so scenarios measured
        minutes or even seconds apart are not compared on the same machine; in alternation each
        meets the same slow drifts. Only the process being measured runs: the others' process
        trees are stopped (SIGSTOP) meanwhile, so their timers take no CPU from it. ``--only``
        narrows it like the rest (``--only c,d-twilio`` for an A/B of the send path)."""
        keys = ("b", "c", "d-twilio", "d-ringcentral", "f")
        if self.args.cycles < 1 or not any(self.wanted(k) for k in keys):
            return None
        binary = self.nginx_with_upstream()
        print(
            f"running paired ratios: {self.args.cycles} cycles of {self.args.slice:g} s ...",
            file=sys.stderr,
            flush=True,
        )
        plan: dict[str, tuple[subprocess.Popen[bytes], int, Load, bool]] = {}
        if self.wanted("b"):
            proxy, port = start_nginx(
                self.processes,
                binary,
                self.workdir,
                "nginx-proxy-paired",
                self.upstream_port,
                self.pinning.sut,
            )
            plan["b"] = (proxy, port, warm_load("twilio"), False)
        if self.wanted("c"):
            floor, port = self.floor("passthrough-paired")
            plan["c"] = (floor, port, warm_load("twilio"), False)
        dialects = [d for d in ("twilio", "ringcentral") if self.wanted(f"d-{d}")]
        if dialects:
            single, port = self.gateway(
                "stopgate-paired",
                f"sqlite:///{self.workdir / 'paired.db'}",
                env={"STOPGATE_FOOTER": "off"},
            )
            for dialect in dialects:
                plan[f"d-{dialect}"] = (single, port, warm_load(dialect), True)
        if self.wanted("f"):
            double, port = self.gateway(
                "stopgate-paired-workers-2", f"sqlite:///{self.workdir / 'paired-2.db'}", workers=2
            )
            plan["f"] = (double, port, warm_load("twilio"), True)
        sliced = argparse.Namespace(**{**vars(self.args), "duration": self.args.slice})
        suts = list(dict.fromkeys(sut for sut, _, _, _ in plan.values()))  # d's dialects share one
        totals = {key: {"requests": 0, "seconds": 0.0, "cpu_s": 0.0, "rps": []} for key in plan}
        try:
            for _, port, load, gateway in plan.values():
                preflight(port, load, gateway=gateway)
            for cycle in range(self.args.cycles):
                order = list(plan) if cycle % 2 == 0 else list(reversed(plan))
                for key in order:
                    sut, port, load, gateway = plan[key]
                    for other in suts:
                        _signal_tree(other, signal.SIGCONT if other is sut else signal.SIGSTOP)
                    # One unmeasured send first: every slice then starts on a process that is
                    # awake and has caught up with its timers, whichever ran the slice before
                    # (the two dialects of d share a process; c never follows itself).
                    preflight(port, load, gateway=gateway)
                    measured = measure_wrk(
                        self.processes,
                        sut,
                        port,
                        load,
                        sliced,
                        self.pinning,
                        self.workdir,
                        f"paired-{key}-{cycle}",
                        warmup=cycle == 0,
                    )
                    figures, details = measured["figures"], measured["details"]
                    if details["error_count"]:
                        raise BenchError(f"paired ({key}): errors {details['errors']}")
                    requests, rps = details["requests"], figures["rps"]
                    total = totals[key]
                    total["requests"] += requests
                    total["seconds"] += requests / rps if rps else 0.0
                    total["cpu_s"] += (figures["cpu_us_per_request"] or 0.0) * requests / 1e6
                    total["rps"].append(rps)
        finally:
            # No signal may cut this short and leave a process stopped.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                for sut in suts:
                    if sut.returncode is None:  # (a reaped pid may belong to another by now)
                        _signal_tree(sut, signal.SIGCONT)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for sut in suts:
                stop_process(self.processes, sut)
        result: dict[str, Any] = {"cycles": self.args.cycles, "slice_s": self.args.slice}
        for key, total in totals.items():
            seconds, requests = total["seconds"], total["requests"]
            result[key] = {
                "rps": requests / seconds if seconds else None,
                "cpu_us_per_request": total["cpu_s"] * 1e6 / requests if requests else None,
                "requests": requests,
                "per_cycle_rps": total["rps"],
            }
        return result

    # (g)
    def inbound(self) -> None:
        if not self.wanted("g"):
            return
        from gateway.carriersim.state import SimCredentials

        sim = SimCredentials()
        row = self.row("g", f"inbound STOP burst of {self.args.burst} (RingCentral webhooks)")
        sim_port, gateway_port = free_port(), free_port()
        sim_log = self.workdir / "carrier-sim.log"
        simulator = self.processes.start(
            "carrier-sim",
            carrier_sim_command(self.args.gateway_src, sim_port, gateway_port),
            cpus=self.pinning.harness,
            log=sim_log,
        )
        wait_for_port(sim_port, simulator, "carrier simulator", sim_log)
        gateway, _ = self.gateway(
            "stopgate-inbound",
            f"sqlite:///{self.workdir / 'inbound.db'}",
            port=gateway_port,
            upstream_url=f"http://{HOST}:{sim_port}",
            env=ringcentral_sim_env(sim),
        )
        result = asyncio.run(
            stop_burst(
                gateway_port,
                sim_port,
                sim.rc_verification_token,
                sim.rc_username,
                self.args.burst,
                self.args.connections,
                lambda: tree_cpu_seconds(gateway.pid),
            )
        )
        row.figures = {
            "rps": result["webhooks_per_s"],
            "p50_ms": result["ack_ms"]["p50"],
            "p99_ms": result["ack_ms"]["p99"],
            "p999_ms": result["ack_ms"]["p999"],
            "cpu_us_per_request": result["cpu_us_per_webhook"],
            "peak_rss_mib": tree_peak_rss_mib(gateway.pid),
        }
        row.details = result
        row.details["error_count"] = result["errors"]
        stop_process(self.processes, gateway)
        stop_process(self.processes, simulator)


def cache_counters(port: int) -> tuple[float, float] | None:
    """(hits, misses) of the gateway's consent cache, from ``/metrics``."""
    try:
        status, body = http("GET", f"http://{HOST}:{port}/metrics", timeout=5.0)
    except OSError:
        return None
    if status != 200:
        return None
    values: dict[str, float] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        for name in ("hits", "misses"):
            if line.startswith(f"stopgate_consent_cache_{name}"):
                values[name] = float(line.rsplit(" ", 1)[1])
    if len(values) != 2:
        return None
    return values["hits"], values["misses"]


def nearest_rank(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rc_stop_notification(customer: str, business: str, message_id: str) -> bytes:
    """A RingCentral instant-message notification of one inbound "STOP"."""
    return json.dumps(
        {
            "uuid": message_id,
            "event": "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS",
            "timestamp": datetime.now().astimezone().isoformat(),
            "body": {
                "id": message_id,
                "to": [{"phoneNumber": business}],
                "from": {"phoneNumber": customer},
                "type": "SMS",
                "direction": "Inbound",
                "subject": "STOP",
                "messageStatus": "Received",
            },
        }
    ).encode()


def rc_stop_request(
    port: int, verification_token: str, customer: str, business: str, message_id: str
) -> bytes:
    """The whole HTTP request posting :func:`rc_stop_notification` to the gateway on ``port``."""
    body = rc_stop_notification(customer, business, message_id)
    return (
        f"POST /webhooks/ringcentral HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nVerification-Token: {verification_token}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def ringcentral_sim_env(sim: SimCredentials) -> dict[str, str]:
    """The settings that point a gateway's RingCentral side at the carrier simulator's account."""
    return {
        "STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN": sim.rc_verification_token,
        "STOPGATE_RINGCENTRAL_CLIENT_ID": sim.rc_client_id,
        "STOPGATE_RINGCENTRAL_CLIENT_SECRET": sim.rc_client_secret,
        "STOPGATE_RINGCENTRAL_JWT": sim.rc_jwt,
    }


def carrier_sim_command(gateway_src: str | None, port: int, gateway_port: int) -> list[str]:
    """``stopgate carrier-sim`` on ``port``, delivering inbound messages to ``gateway_port``."""
    return [
        *stopgate_command(gateway_src),
        "carrier-sim",
        "--listen",
        f"{HOST}:{port}",
        "--gateway",
        f"http://{HOST}:{gateway_port}",
    ]


class WebhookConnection:
    """One keep-alive connection posting raw webhook requests, one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> WebhookConnection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def post(self, raw: bytes) -> tuple[float, float, int]:
        """(wall-clock time sent, seconds to the answer's last byte, status); a gateway that
        does not answer within ``CONFIRMATION_TIMEOUT`` fails the run."""
        sent_wall, started = time.time(), time.perf_counter()
        self._writer.write(raw)
        async with asyncio.timeout(CONFIRMATION_TIMEOUT):
            head, length = await self._head()
            await self._reader.readexactly(length)
        return sent_wall, time.perf_counter() - started, int(head.split(b" ", 2)[1])

    async def _head(self) -> tuple[bytes, int]:
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise BenchError("a chunked webhook answer (the bench reads Content-Length)")
        return head, length

    def close(self) -> None:
        self._writer.close()


async def stop_burst(
    gateway_port: int,
    sim_port: int,
    verification_token: str,
    business: str,
    count: int,
    concurrency: int,
    gateway_cpu: Callable[[], float],
) -> dict[str, Any]:
    """``count`` STOP webhooks, ``concurrency`` at a time on keep-alive connections opened
    beforehand: each one's time to a 2xx (the opt-out is durable then), and to its
    confirmation reaching the simulated carrier."""
    import aiohttp

    messages = f"http://{HOST}:{sim_port}/sim/messages"
    # As many pooled connections as webhooks in flight (aiohttp's default stops at 100).
    connector = aiohttp.TCPConnector(limit=max(100, concurrency))
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), connector=connector
    ) as session:

        async def confirmations(customers: set[str], deadline: float) -> dict[str, float]:
            seen: dict[str, float] = {}
            while time.monotonic() < deadline:
                async with session.get(messages, params={"provider": "ringcentral"}) as reply:
                    document = await reply.json()
                for entry in document.get("messages", []):
                    if entry["to"] in customers and entry["to"] not in seen:
                        stamp = datetime.fromisoformat(entry["received_at"].replace("Z", "+00:00"))
                        seen[entry["to"]] = stamp.timestamp()
                if len(seen) == len(customers):
                    break
                await asyncio.sleep(0.1)
            return seen

        def request(customer: str, tag: str) -> bytes:
            message_id = f"bench-{tag}-{secrets.token_hex(4)}"
            return rc_stop_request(gateway_port, verification_token, customer, business, message_id)

        # One STOP first: the gateway logs in to the carrier for its confirmations once. Then
        # one STOP on each of ``concurrency`` connections at once: the burst runs on keep-alive
        # connections already open, as a carrier's delivery pool does, so a webhook's time is
        # the gateway's and not that of the load generator opening connections.
        # (The warm-up also warms the gateway's own connection to the carrier for replies.)
        # The webhooks go over plain sockets with their bytes made beforehand: a webhook's time
        # runs from its request's write to its answer's last byte, without an HTTP client's own
        # work in it (16 answers arriving together would otherwise each wait for the client to
        # finish with the ones before).
        connections: list[WebhookConnection] = []
        try:
            for _ in range(max(1, concurrency)):
                connections.append(await WebhookConnection.open(gateway_port))
            warm = f"+1{INBOUND_CUSTOMER_BASE - 1}"
            pool = [f"+1{INBOUND_CUSTOMER_BASE - 2 - i}" for i in range(len(connections))]
            warm_status = [(await connections[0].post(request(warm, "warm")))[2]]
            await confirmations({warm}, time.monotonic() + CONFIRMATION_TIMEOUT)
            warmed = await asyncio.gather(
                *(
                    c.post(request(customer, "warm"))
                    for c, customer in zip(connections, pool, strict=True)
                )
            )
            warm_status += [status for _, _, status in warmed]
            if any(not 200 <= status < 300 for status in warm_status):
                raise BenchError(f"the warm-up STOPs were answered {sorted(set(warm_status))}")
            await confirmations(set(pool), time.monotonic() + CONFIRMATION_TIMEOUT)

            customers = [f"+1{INBOUND_CUSTOMER_BASE + i}" for i in range(count)]
            queue = [(customer, request(customer, "burst")) for customer in customers]
            queue.reverse()
            sent: dict[str, tuple[float, float, int]] = {}

            async def worker(connection: WebhookConnection) -> None:
                while queue:
                    customer, raw = queue.pop()
                    sent[customer] = await connection.post(raw)

            cpu_before = gateway_cpu()
            started = time.perf_counter()
            async with asyncio.TaskGroup() as workers:  # one failing stops the others
                for connection in connections:
                    workers.create_task(worker(connection))
            burst_seconds = time.perf_counter() - started
        finally:
            for connection in connections:
                connection.close()
        confirmed = await confirmations(set(customers), time.monotonic() + CONFIRMATION_TIMEOUT)
        cpu = gateway_cpu() - cpu_before

    ack = [latency * 1000 for _, latency, _ in sent.values()]
    to_confirmation = [
        max(0.0, (confirmed[c] - sent[c][0]) * 1000) for c in customers if c in confirmed
    ]
    not_2xx = sum(1 for _, _, status in sent.values() if not 200 <= status < 300)
    return {
        "webhooks": count,
        "concurrency": concurrency,
        "warm_connections": len(pool),
        "burst_s": burst_seconds,
        "webhooks_per_s": count / burst_seconds if burst_seconds else None,
        "ack_ms": {
            p: nearest_rank(ack, q) for p, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))
        },
        "confirmation_ms": {
            p: nearest_rank(to_confirmation, q)
            for p, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))
        },
        "confirmation_resolution_ms": 1,
        "confirmed": len(confirmed),
        "not_2xx": not_2xx,
        "errors": not_2xx + (count - len(confirmed)),
        "cpu_us_per_webhook": cpu * 1e6 / count if count else None,
    }


# ---- the run ------------------------------------------------------------------------------


def targets(rows: dict[str, Row]) -> dict[str, float | None]:
    def figure(key: str, name: str) -> float | None:
        row = rows.get(key)
        return None if row is None or row.skipped else row.figures.get(name)

    def divide(x: float | None, y: float | None) -> float | None:
        return x / y if x is not None and y else None

    def minus(x: float | None, y: float | None) -> float | None:
        return x - y if x is not None and y is not None else None

    inbound = rows.get("g")
    return {
        "stopgate_over_floor_rps": divide(figure("d-twilio", "rps"), figure("c", "rps")),
        "stopgate_ringcentral_over_floor_rps": divide(
            figure("d-ringcentral", "rps"), figure("c", "rps")
        ),
        "workers2_over_nginx_proxy_rps": divide(figure("f", "rps"), figure("b", "rps")),
        "added_p50_ms_at_rate": minus(
            figure("ol-stopgate", "p50_ms"), figure("ol-direct", "p50_ms")
        ),
        "added_p99_ms_at_rate": minus(
            figure("ol-stopgate", "p99_ms"), figure("ol-direct", "p99_ms")
        ),
        "stop_webhook_p99_ms": figure("g", "p99_ms"),
        "stop_confirmation_p99_ms": (
            inbound.details.get("confirmation_ms", {}).get("p99")
            if inbound and not inbound.skipped
            else None
        ),
    }


ROUND_KEYS = frozenset(
    {"a", "b", "c", "d-twilio", "d-ringcentral", "d-twilio-footer", "d-ringcentral-footer", "f"}
)
"""The closed-loop scenarios run once per round (``--rounds``)."""

ROUND_TARGETS = (
    "stopgate_over_floor_rps",
    "stopgate_ringcentral_over_floor_rps",
    "workers2_over_nginx_proxy_rps",
)
"""Targets whose per-round values are kept, with their medians: these judge when the paired
measurement did not run (``--cycles 0``), and are printed beside it when it did."""


def median_round(per_round: list[dict[str, float | None]]) -> int:
    """The index of the round whose Stopgate ÷ floor ratio is the median (the lower middle of an
    even count); 0 when no round has one."""
    ranked = sorted(
        (t["stopgate_over_floor_rps"], n)
        for n, t in enumerate(per_round)
        if t["stopgate_over_floor_rps"] is not None
    )
    return ranked[(len(ranked) - 1) // 2][1] if ranked else 0


PAIRED_TARGETS = {
    "stopgate_over_floor_rps": ("d-twilio", "c"),
    "stopgate_ringcentral_over_floor_rps": ("d-ringcentral", "c"),
    "workers2_over_nginx_proxy_rps": ("f", "b"),
}
"""The req/s ratios the paired measurement judges: (numerator, denominator) scenarios."""


def paired_targets(paired: dict[str, Any]) -> dict[str, float | None]:
    """Each ratio of :data:`PAIRED_TARGETS` whose two scenarios were paired, from the totals."""
    found: dict[str, float | None] = {}
    for name, (top, bottom) in PAIRED_TARGETS.items():
        if top in paired and bottom in paired:
            x, y = paired[top]["rps"], paired[bottom]["rps"]
            found[name] = x / y if x is not None and y else None
    return found


def paired_cycle_ratios(paired: dict[str, Any], name: str) -> list[float]:
    """One ratio of :data:`PAIRED_TARGETS` per cycle (scenarios measured seconds apart); none
    when its two scenarios were not both paired."""
    top, bottom = PAIRED_TARGETS[name]
    if top not in paired or bottom not in paired:
        return []
    return [
        x / y
        for x, y in zip(paired[top]["per_cycle_rps"], paired[bottom]["per_cycle_rps"], strict=True)
        if x is not None and y
    ]


def render_targets(
    found: dict[str, float | None],
    rate: float,
    per_round: list[dict[str, float | None]],
    paired: dict[str, Any] | None = None,
) -> str:
    def spread(name: str, spec: str) -> str:
        parts = []
        cycles = paired_cycle_ratios(paired, name) if paired is not None else []
        if paired is not None and cycles:
            low, high, middle = min(cycles), max(cycles), statistics.median(cycles)
            parts.append(
                f"paired, {paired['cycles']} cycles of {paired['slice_s']:g} s; per cycle"
                f" {fmt(low, spec)} to {fmt(high, spec)}, median {fmt(middle, spec)}"
            )
        values = [fmt(t[name], spec) for t in per_round]
        if len(values) > 1 or paired is not None:
            parts.append(f"rounds, one after another: {', '.join(values)}")
        return "".join(f"; {part}" for part in parts)

    over_floor = fmt(found["stopgate_over_floor_rps"], ".2f")
    rc_over_floor = fmt(found["stopgate_ringcentral_over_floor_rps"], ".2f")
    over_nginx = fmt(found["workers2_over_nginx_proxy_rps"], ".3f")
    added_p50 = fmt(found["added_p50_ms_at_rate"], "+.2f")
    added_p99 = fmt(found["added_p99_ms_at_rate"], "+.2f")
    ack = fmt(found["stop_webhook_p99_ms"], ".1f")
    confirmation = fmt(found["stop_confirmation_p99_ms"], ".0f")
    return "\n".join(
        [
            "targets (issue 8):",
            f"  Stopgate (d-twilio) ÷ bare aiohttp (c), req/s: {over_floor} (target ≥ 1.2"
            f"{spread('stopgate_over_floor_rps', '.2f')})",
            f"  Stopgate (d-ringcentral) ÷ bare aiohttp (c), req/s: {rc_over_floor} (target ≥ 1.2"
            f"{spread('stopgate_ringcentral_over_floor_rps', '.2f')})",
            f"  Stopgate --workers 2 (f) ÷ nginx proxy_pass (b), req/s: {over_nginx}"
            f" (target ≥ 0.15{spread('workers2_over_nginx_proxy_rps', '.3f')})",
            f"  added latency at {rate:g} sends/s offered (open loop): p50 {added_p50} ms"
            f" (target ≤ 0.5), p99 {added_p99} ms (target ≤ 3)",
            f"  STOP webhook → 2xx p99: {ack} ms (target ≤ 20); → confirmation received by the"
            f" carrier p99: {confirmation} ms",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds (default 1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--records", type=int, default=None, help="consent records for (e)")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop sends/s offered")
    parser.add_argument("--burst", type=int, default=None, help="STOP webhooks in (g)")
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"PostgreSQL for (e) (default {DEFAULT_POSTGRES}; '' to skip)",
    )
    parser.add_argument("--only", help="comma-separated scenario keys or prefixes, e.g. a,c,d,g")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not install nginx or wrk when missing (stop with an error instead)",
    )
    parser.add_argument("--gateway-src", metavar="DIR", help="run the gateway from this tree")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="STOPGATE_NAME=VALUE",
        help="a setting for every Stopgate the suite starts (repeatable), e.g. for an A/B of it;"
        " not one the suite sets itself (upstreams, tokens, spool, footer)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds of the closed-loop scenarios a-d and f (default 3, 1 with --quick; with"
        " --cycles 0 the req/s ratios are judged by the medians of their per-round ratios)",
    )
    parser.add_argument(
        "--cycles",
        type=int,
        default=None,
        help="cycles of the paired measurement that judges the req/s ratios, an even number"
        " (default 20, 2 with --quick; 0 skips it and the round medians judge)",
    )
    parser.add_argument(
        "--slice",
        type=int,
        default=1,
        help="seconds each scenario runs in each paired cycle (default 1)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 s runs, 30,000 records, 20 webhooks, one round unless --rounds, two paired"
        " cycles unless --cycles (CI smoke)",
    )
    parser.add_argument(
        "--require-all", action="store_true", help="exit 1 when any scenario was skipped"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 1.0
        args.warmup = 0.0 if args.warmup is None else args.warmup
        args.connections = min(args.connections, 8)
        args.records = args.records or 30_000
        args.burst = args.burst or 20
        args.rounds = args.rounds or 1
        args.cycles = 2 if args.cycles is None else args.cycles
    args.warmup = 1.0 if args.warmup is None else args.warmup
    args.records = args.records or 1_000_000
    args.burst = args.burst or 200
    args.rounds = 3 if args.rounds is None else args.rounds
    args.cycles = 20 if args.cycles is None else args.cycles
    args.only = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else []
    if args.duration <= 0 or args.connections < 1 or args.records < 3 or args.rate <= 0:
        parser.error("duration, connections, rate must be positive and records at least 3")
    if args.rounds < 1:
        parser.error("rounds must be at least 1")
    if args.cycles < 0 or args.cycles % 2 or args.slice < 1:
        # An even count runs each order (forward, reversed) equally often.
        parser.error("cycles must be even (0 to skip) and a slice lasts at least 1 s")
    for item in args.env:
        if "=" not in item or not item.startswith("STOPGATE_"):
            parser.error(f"--env takes STOPGATE_NAME=VALUE, not {item!r}")
    return args


OVERLOAD_ERRORS = frozenset({"timeout", "TimeoutError"})
"""What an open-loop run records when the server cannot keep up with the offered rate."""


def overloaded(key: str, row: Row) -> bool:
    """An open-loop run that fell behind the offered rate: requests still queued when the
    window closed, or timed out in the queue. That is a figure (the server's capacity is below
    the rate), not a broken setup."""
    errors = row.details.get("errors") or {}
    return (
        key.startswith("ol-")
        and set(errors) <= OVERLOAD_ERRORS
        # More than 10 ms worth of sends still waiting for a connection when the window closed.
        and (
            bool(errors) or row.details.get("backlog_at_end", 0) > row.details["offered_rps"] / 100
        )
    )


def check(rows: dict[str, Row], require_all: bool) -> tuple[list[str], list[str]]:
    """(problems that fail the run, notes)."""
    problems, notes = [], []
    for key, row in rows.items():
        if row.skipped:
            if require_all:
                problems.append(f"({key}) skipped: {row.skipped}")
            continue
        if not row.figures.get("rps"):
            problems.append(f"({key}) got no responses")
        failures = row.details.get("error_count") or 0
        if overloaded(key, row):
            timed_out = sum(row.details["errors"].values())
            failures -= timed_out
            notes.append(
                f"({key}) could not keep up with {row.details['offered_rps']:g} requests/s"
                f" offered ({row.details['backlog_at_end']} still queued when the window closed,"
                f" {timed_out} timed out): its latency is mostly queueing"
            )
        if failures:
            problems.append(f"({key}) errors: {row.details.get('errors')}")
    return problems, notes


DISPLAY_ORDER = ("a", "b", "c", "d-", "e-", "f", "g", "ol-")


def display_rank(key: str) -> int:
    return next(
        (n for n, prefix in enumerate(DISPLAY_ORDER) if key == prefix or key.startswith(prefix)),
        len(DISPLAY_ORDER),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Every scenario but the STOP burst (g) runs behind nginx, and the closed-loop ones on wrk.
    needs_tools = not args.only or any(not key.startswith("g") for key in args.only)
    if needs_tools and not args.no_install:
        try:
            install_missing_tools()
        except BenchError as exc:
            print(f"suite failed: {exc}", file=sys.stderr)
            return 1
    pinning = plan_pinning(not args.no_pin)
    busy = machine_busy()
    started = time.monotonic()
    processes = Processes()
    rounds: list[dict[str, Row]] = []
    try:
        with (
            terminate_on_sigterm(),
            tempfile.TemporaryDirectory(prefix="stopgate-suite-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            suite = Suite(args, pinning, Path(tmp), processes, stack)
            try:
                for number in range(1, args.rounds + 1):
                    suite.round = number
                    suite.baselines()
                    suite.warm()
                    suite.workers()
                    rounds.append({k: suite.rows[k] for k in suite.rows if k in ROUND_KEYS})
                paired = suite.paired()
                suite.cold()
                suite.inbound()
            except BenchError as exc:
                logs = sorted(Path(tmp).glob("stopgate*.log"))
                detail = "\n".join(f"--- {p.name}:\n{tail(p, 15)}" for p in logs[-2:])
                raise BenchError(f"{exc}\n{detail}") from None
            finally:
                processes.stop_all()
    except BenchError as exc:
        print(f"suite failed: {exc}", file=sys.stderr)
        return 1
    # The table shows the round whose Stopgate ÷ floor ratio is the median one; each round-judged
    # target is the median of its per-round values (each within one round).
    per_round = [targets(r) for r in rounds]
    middle = median_round(per_round)
    rows = {**suite.rows, **(rounds[middle] if rounds else {})}
    rows = dict(sorted(rows.items(), key=lambda item: display_rank(item[0])))
    to_b, to_c = ratios(rows, "b"), ratios(rows, "c")
    found = targets(rows)
    for name in ROUND_TARGETS:
        values = [t[name] for t in per_round if t[name] is not None]
        found[name] = statistics.median(values) if values else None
    round_medians = {name: found[name] for name in ROUND_TARGETS}
    if paired is not None:
        # The paired measurement judges: its scenarios met the same swings of the machine.
        found.update(paired_targets(paired))
    elapsed = time.monotonic() - started
    build = send_path_build(args.gateway_src)
    header = (
        f"Stopgate bench suite, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: "
        f"wrk {args.connections} connections, {args.duration:g} s per run "
        f"(+{args.warmup:g} s warm-up); {pinning.note}; machine busy before start: "
        f"{fmt(busy, '.0f')}% of a CPU; Stopgate's send path {build}; {elapsed:.0f} s in all"
    )
    print(header)
    print(render(rows, to_b, to_c))
    print()
    print(render_targets(found, args.rate, per_round, paired))
    inbound = rows.get("g")
    if inbound and not inbound.skipped:
        c = inbound.details["confirmation_ms"]
        print(
            f"(g) STOP → confirmation received by the carrier: p50 {fmt(c['p50'], '.0f')} ms, "
            f"p99 {fmt(c['p99'], '.0f')} ms ({inbound.details['confirmed']}/"
            f"{inbound.details['webhooks']} confirmed)"
        )
    for key, row in rows.items():
        if row.details.get("cache_miss_ratio") is not None and key.startswith("e-"):
            print(f"({key}) cache miss ratio during the run: {row.details['cache_miss_ratio']:.2f}")
    if args.json:
        document = {
            "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
            "environment": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus_available": sorted(os.sched_getaffinity(0)),
                "cpu_pinning": pinning.note,
                "gateway_env": args.env,
                "busy_before_percent": busy,
                "event_loop": event_loop_name(),
                "send_path": build,
                **suite.info,
            },
            "scenarios": {
                key: {
                    "title": row.title,
                    "skipped": row.skipped,
                    **row.figures,
                    "ratio_to_b": to_b[key],
                    "ratio_to_c": to_c[key],
                    "details": row.details,
                }
                for key, row in rows.items()
            },
            "targets": found,
            "paired": paired,
            "round_medians": round_medians,
            "rounds": [
                {
                    "targets": {name: t[name] for name in ROUND_TARGETS},
                    "scenarios": {key: row.figures for key, row in r.items()},
                }
                for t, r in zip(per_round, rounds, strict=True)
            ],
            "table_round": middle + 1 if rounds else None,
            "elapsed_s": elapsed,
        }
        Path(args.json).write_text(json.dumps(document, indent=2, default=str) + "\n")
    problems, notes = check(rows, args.require_all)
    for number, round_rows in enumerate(rounds, start=1):
        if number - 1 != middle:
            problems += [f"round {number}: {p}" for p in check(round_rows, args.require_all)[0]]
    if busy is not None and busy > NOISY_BUSY_PERCENT:
        notes.append(
            f"the machine was busy before the start ({busy:.0f}% of a CPU in use by other"
            " processes): the figures are noisy; ratios within this run hold up best"
        )
    for note in notes:
        print(f"NOTE: {note}")
    if problems:
        print("suite FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"suite OK ({elapsed:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
