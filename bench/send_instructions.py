"""Benchmark: CPU instructions per send, counted by callgrind (immune to a busy machine).

    python bench/send_instructions.py [--sends 500] [--gateway-src OLD_TREE ...] [--json OUT]

Starts ``bench/fast_upstream.py`` and ``stopgate serve`` (SQLite store, Twilio dialect) with the
gateway under ``valgrind --tool=callgrind --instr-atstart=no``; sends warm-up requests (so the
consent cache is warm and every code path has run once), switches instrumentation on, sends
``--sends`` requests one after another on one keep-alive connection, and reads the instruction
count back. Scenarios: (b) allowed sends rotating over 100 recipients, (c) sends to an opted-out
pair (refused 21610), (p) the same allowed sends through ``bench/passthrough_proxy.py`` instead of
Stopgate (the Python floor of ``bench/suite.py``: the ratio b/p is the CPU cost of a send against
a proxy that checks nothing), and two inbound ones: (s) signed Twilio STOP webhooks, each from a
new customer (verified, classified, the opt-out committed, TwiML confirmation in the answer), and
(r) RingCentral STOP webhooks as in ``bench/suite.py`` (g), with the carrier simulator as the
upstream: the count includes each confirmation's delivery from the outbox, since instrumentation
stays on until the simulator has received them all; ``--connections N`` sends them in waves of
N, one on each of N connections, as a burst's webhooks arrive (they share group commits). Each
scenario runs in a process of its own.
Each ``--gateway-src`` tree (e.g. ``git worktree add /tmp/old <commit>``) is measured the same
way, so two versions compare as a ratio of instruction counts, whatever else the machine is
doing. ``--keep DIR`` keeps callgrind's output
files there, for ``callgrind_annotate`` (where the instructions go, by function or by library).
Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import send_path  # noqa: E402
from send_path import (  # noqa: E402  (the bench directory is on sys.path)
    AUTH_TOKEN,
    BLOCKED_BASE,
    HOST,
    ROOT,
    BenchError,
    free_port,
    http,
    number,
    opt_out,
    send_request,
    stopgate_command,
    wait_for_port,
    wait_ready,
)
from stop_webhook import webhook as twilio_webhook  # noqa: E402
from suite import carrier_sim_command, rc_stop_request, ringcentral_sim_env  # noqa: E402

from gateway.carriersim.state import SimCredentials  # noqa: E402

ALLOWED_BASE = 6505552000
INBOUND_BASE = 6505562000
INBOUND = frozenset("sr")
_MEASUREMENTS = itertools.count(1)
SIM = SimCredentials()
WARMUP_SENDS = 150
START_TIMEOUT = 240.0
"""Seconds a gateway under valgrind may take to answer /readyz."""


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 response with a Content-Length; return its status."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("connection closed mid-response")
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if match is None:
        raise BenchError(f"response without Content-Length: {head[:300]!r}")
    total = len(head) + 4 + int(match.group(1))
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("connection closed mid-body")
        buffer += chunk
    status = int(head.split(b" ", 2)[1])
    del buffer[:total]
    return status


def send_all(port: int, requests: Sequence[bytes], expect: int) -> None:
    with socket.create_connection((HOST, port), timeout=120) as sock:
        buffer = bytearray()
        for raw in requests:
            sock.sendall(raw)
            status = read_response(sock, buffer)
            if status != expect:
                raise BenchError(f"expected {expect}, got {status}")


def send_waves(port: int, requests: Sequence[bytes], expect: int, connections: int) -> None:
    """``requests`` in waves of ``connections``: one on each keep-alive connection, then every
    answer read before the next wave (a burst's shape: its webhooks share group commits)."""
    if connections <= 1:
        send_all(port, requests, expect)
        return
    socks = [socket.create_connection((HOST, port), timeout=120) for _ in range(connections)]
    buffers = [bytearray() for _ in socks]
    try:
        for start in range(0, len(requests), connections):
            wave = list(zip(socks, buffers, requests[start : start + connections], strict=False))
            for sock, _, raw in wave:
                sock.sendall(raw)
            for sock, buffer, _ in wave:
                status = read_response(sock, buffer)
                if status != expect:
                    raise BenchError(f"expected {expect}, got {status}")
    finally:
        for sock in socks:
            sock.close()


def callgrind_total(out_file: Path) -> int:
    for line in reversed(out_file.read_text(errors="replace").splitlines()):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"no totals in {out_file}")


@contextlib.contextmanager
def started(command: Sequence[str], env: dict[str, str], log: Path) -> Iterator[Any]:
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def measure(
    source: str | None,
    scenario: str,
    sends: int,
    workdir: Path,
    extra_env: Sequence[str] = (),
    connections: int = 1,
    idle_seconds: float = 10.0,
) -> tuple[int, float]:
    """Instructions counted and the counting window's length in seconds."""
    upstream_port, gateway_port = free_port(), free_port()
    admin = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOPGATE_")}
    upstream_url = f"http://{HOST}:{upstream_port}"
    env.update(
        STOPGATE_TWILIO_UPSTREAM=upstream_url,
        STOPGATE_RINGCENTRAL_UPSTREAM=upstream_url,
        STOPGATE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        STOPGATE_ADMIN_TOKEN=admin,
    )
    for item in extra_env:
        key, _, value = item.partition("=")
        env[key] = value
    # Each measurement's files apart, even of two trees of one name.
    tag = f"{next(_MEASUREMENTS)}-{Path(source).name if source else 'this'}-{scenario}"
    out_file = workdir / f"callgrind.{tag}.out"
    store = workdir / f"{tag}.db"
    if scenario == "p":
        # The Python floor of bench/suite.py (c): the bare aiohttp pass-through proxy.
        served = [
            sys.executable,
            str(HERE / "passthrough_proxy.py"),
            "--port",
            str(gateway_port),
            "--upstream",
            upstream_url,
        ]
    else:
        served = [
            *stopgate_command(source),
            "serve",
            "--listen",
            f"{HOST}:{gateway_port}",
            "--store",
            f"sqlite:///{store}",
        ]
    if scenario == "r":
        env.update(ringcentral_sim_env(SIM))
    gateway = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
        *served,
    ]
    upstream = [sys.executable, str(HERE / "fast_upstream.py"), "--port", str(upstream_port)]
    if scenario == "r":
        upstream = carrier_sim_command(None, upstream_port, gateway_port)
    with (
        started(upstream, env, workdir / f"upstream.{tag}.log") as up,
        started(gateway, env, workdir / f"gateway.{tag}.log") as gw,
    ):
        wait_for_port(upstream_port, up, "fast upstream", workdir / f"upstream.{tag}.log")
        send_path.START_TIMEOUT = START_TIMEOUT  # valgrind starts slowly
        if scenario == "p":
            wait_for_port(gateway_port, gw, "pass-through proxy", workdir / f"gateway.{tag}.log")
        else:
            wait_ready(gateway_port, gw, workdir / f"gateway.{tag}.log")
        window = Window()
        if scenario in INBOUND:
            measure_inbound(
                scenario, gateway_port, upstream_port, gw.pid, sends, connections, window
            )
        else:
            if scenario == "c":
                blocked = number(BLOCKED_BASE, 0)
                opt_out(gateway_port, admin, [blocked])
                requests = [send_request(gateway_port, blocked)] * sends
                expect = 400
            else:
                recipients = [number(ALLOWED_BASE, n) for n in range(100)]
                requests = [send_request(gateway_port, recipients[n % 100]) for n in range(sends)]
                expect = 201
            send_all(gateway_port, requests[:WARMUP_SENDS] + requests[:100], expect)
            with instrumented(gw.pid, window):
                if scenario == "i":
                    time.sleep(idle_seconds)
                else:
                    send_all(gateway_port, requests, expect)
        gw.terminate()
        gw.wait(120)
    # The dump written at exit holds what was counted while instrumentation was on.
    deadline = time.monotonic() + 30
    while not out_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return callgrind_total(out_file), window.seconds


class Window:
    """How long instrumentation was on (wall-clock seconds)."""

    seconds = 0.0


@contextlib.contextmanager
def instrumented(pid: int, window: Window) -> Iterator[None]:
    """Callgrind counts instructions of ``pid`` only inside this block; ``window`` gets its
    length."""
    control = shutil.which("callgrind_control") or "callgrind_control"
    subprocess.run([control, "-i", "on", str(pid)], check=True, capture_output=True)
    started = time.monotonic()
    try:
        yield
    finally:
        subprocess.run([control, "-i", "off", str(pid)], check=True, capture_output=True)
        window.seconds = time.monotonic() - started


def rc_webhook(port: int, n: int) -> bytes:
    customer = number(INBOUND_BASE, n)
    return rc_stop_request(port, SIM.rc_verification_token, customer, SIM.rc_username, f"count-{n}")


def confirmed(sim_port: int) -> int:
    """How many RingCentral messages the simulator has received (the confirmations)."""
    status, body = http("GET", f"http://{HOST}:{sim_port}/sim/messages?provider=ringcentral")
    if status != 200:
        raise BenchError(f"simulator answered {status}")
    return len(json.loads(body)["messages"])


def wait_confirmed(sim_port: int, count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while (seen := confirmed(sim_port)) < count:
        if time.monotonic() > deadline:
            raise BenchError(f"{seen} of {count} confirmations reached the simulator")
        time.sleep(0.05)


def measure_inbound(
    scenario: str,
    port: int,
    sim_port: int,
    pid: int,
    count: int,
    connections: int,
    window: Window,
) -> None:
    """Warm-up STOPs, then ``count`` more counted, each from a customer not seen before, in
    waves of ``connections``."""
    build = twilio_webhook if scenario == "s" else rc_webhook
    warmed = min(WARMUP_SENDS, max(2 * count, 2 * connections))  # a smoke run warms less
    warm = [build(port, n) for n in range(warmed)]
    counted = [build(port, n) for n in range(warmed, warmed + count)]
    send_waves(port, warm, 200, connections)
    if scenario == "r":
        wait_confirmed(sim_port, len(warm))
    with instrumented(pid, window):
        send_waves(port, counted, 200, connections)
        if scenario == "r":
            # The confirmations go out after the answers: count them in, then stop.
            wait_confirmed(sim_port, len(warm) + count)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=500)
    parser.add_argument("--gateway-src", action="append", default=[], help="another tree")
    parser.add_argument("--scenarios", default="bc")
    parser.add_argument("--json")
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's output files here")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="how long scenario (i) counts an idle gateway (default 10)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="webhooks in flight in the inbound scenarios (s, r), sent in waves; default 1",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        help="KEY=VALUE for the gateway, e.g. STOPGATE_FOOTER=always",
    )
    options = parser.parse_args(argv)
    for item in options.env:
        if "=" not in item or not item.startswith("STOPGATE_"):
            parser.error(f"--env takes STOPGATE_NAME=VALUE, not {item!r}")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    sources: list[str | None] = [*options.gateway_src, None]
    figures: dict[str, dict[str, float]] = {}
    # "i" first: the other scenarios' figures are then also given without the idle rate.
    order = sorted(options.scenarios, key=lambda scenario: scenario != "i")
    with tempfile.TemporaryDirectory(prefix="stopgate-callgrind-") as tmp:
        for source in sources:
            name = source or "this tree"
            idle_rate: float | None = None
            for scenario in order:
                total, seconds = measure(
                    source,
                    scenario,
                    options.sends,
                    Path(tmp),
                    options.env,
                    options.connections,
                    options.idle_seconds,
                )
                if scenario == "i":
                    idle_rate = total / seconds
                    figures.setdefault(name, {})["i"] = round(idle_rate)
                    print(f"{name} (i): {idle_rate:,.0f} instructions per idle second", flush=True)
                    continue
                per_send = total / options.sends
                figures.setdefault(name, {})[scenario] = round(per_send)
                unit = "webhook" if scenario in INBOUND else "send"
                line = f"{name} ({scenario}): {per_send:,.0f} instructions per {unit}"
                line += f" (counted over {seconds:.1f} s"
                if idle_rate is not None:
                    # What the timers (change feed, outbox, heartbeat) would have cost anyway.
                    net = (total - idle_rate * seconds) / options.sends
                    figures[name][f"{scenario}-net"] = round(net)
                    line += f"; {net:,.0f} without the idle rate"
                print(line + ")", flush=True)
        if options.keep:
            keep = Path(options.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for kept in Path(tmp).glob("callgrind.*.out"):
                shutil.copy2(kept, keep / kept.name)
    mine = figures["this tree"]
    if "b" in mine and "p" in mine:
        print(f"(b) / (p), this tree: {mine['b'] / mine['p']:.3f}")
    if len(sources) > 1:
        mine = figures["this tree"]
        for name, values in figures.items():
            if name != "this tree":
                for scenario, value in values.items():
                    print(f"({scenario}) this tree / {name}: {mine[scenario] / value:.3f}")
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
