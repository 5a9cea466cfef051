"""Benchmark: CPU per request of the send path's upstream client against aiohttp's client.

    python bench/upstream_client.py [--requests 5000] [--concurrency 16] [--smoke]

Starts ``bench/fast_upstream.py`` in a process of its own, then in this process (uvloop when
installed) sends the same small Twilio POST through ``gateway.upstream_lean.LeanClient`` and
through an aiohttp ``ClientSession`` made by ``gateway.upstream.make_client_session``, each
``--requests`` times from ``--concurrency`` tasks, in alternating rounds. It prints the CPU time
of this process per request (the client alone: the upstream runs elsewhere) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from multidict import CIMultiDict
from yarl import URL

from gateway import upstream
from gateway.config import Settings
from gateway.upstream_lean import LeanClient

HERE = Path(__file__).resolve().parent
BODY = b"To=%2B16505551234&From=%2B16505550100&Body=Your+appointment+is+confirmed"
HEADERS = CIMultiDict(
    {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "Basic QUM1NzA5YTdlNTU3MDlhN2U1NTcwOWE3ZTU1NzA5YTdlNTp0b2tlbg==",
    }
)
RAW_HEADERS = [(name.encode(), value.encode()) for name, value in HEADERS.items()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"fast_upstream did not listen on {port}")


async def cpu_per_request(
    send: Callable[[], Awaitable[int]], requests: int, concurrency: int
) -> float:
    """Microseconds of this process's CPU per request, ``requests`` spread over the tasks."""

    async def worker(count: int) -> None:
        for _ in range(count):
            if await send() != 201:
                raise SystemExit("unexpected upstream status")

    for _ in range(concurrency):  # connections opened outside the measurement
        await send()
    started = time.process_time()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (requests // concurrency * concurrency) * 1e6


async def measure(port: int, requests: int, concurrency: int, rounds: int) -> dict[str, float]:
    url = URL(f"http://127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json")
    settings = Settings()
    lean = LeanClient(settings)
    session = upstream.make_client_session(settings)

    async def via_lean() -> int:
        return (await lean.request("POST", url, headers=RAW_HEADERS, body=BODY)).status

    async def via_aiohttp() -> int:
        response = await upstream.request(session, "POST", url, headers=HEADERS, data=BODY)
        async with response:
            await upstream.read_body(response)
        return response.status

    best = {"lean": float("inf"), "aiohttp": float("inf")}
    try:
        for _ in range(rounds):
            best["lean"] = min(best["lean"], await cpu_per_request(via_lean, requests, concurrency))
            best["aiohttp"] = min(
                best["aiohttp"], await cpu_per_request(via_aiohttp, requests, concurrency)
            )
    finally:
        await lean.close()
        await session.close()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a few requests, one round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.rounds = 64, 1
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fast_upstream.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        best = asyncio.run(measure(port, args.requests, args.concurrency, args.rounds))
    finally:
        server.terminate()
        server.wait(10)
    print(f"lean client     {best['lean']:7.1f} µs CPU per request (best of {args.rounds})")
    print(f"aiohttp client  {best['aiohttp']:7.1f} µs CPU per request (best of {args.rounds})")
    print(f"lean ÷ aiohttp  {best['lean'] / best['aiohttp']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
