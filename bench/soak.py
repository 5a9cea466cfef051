"""Soak: a steady mixed load for a long time, with STOPs arriving throughout.

Starts the carrier simulator and ``stopgate serve`` (fresh SQLite store and spool in a temporary
directory, or ``--store`` a PostgreSQL URL) on 127.0.0.1, then for ``--duration`` seconds drives,
open loop at fixed rates:

- sends (``--rate`` per second) half in the Twilio dialect, half in RingCentral's, each to a
  customer drawn at random from a pool of fictional numbers, each with a unique text
  ``soak #N`` so the simulator's delivered log says which send it was;
- STOP webhooks (``--stop-rate`` per second), signed and delivered by the simulator
  (``POST /sim/inbound``), alternating Twilio and RingCentral, each to a customer not stopped
  yet, while sends to that customer keep coming;
- consent API reads (one per second).

Then it checks, from outside the gateway:

- **sends after a STOP**: a send whose request *started* after the STOP's acknowledgement had
  come back and that the simulator delivered anyway (its ``soak #N`` is in ``/sim/messages``),
  or that the gateway answered as forwarded. Must be 0.
- **lost STOPs**: acknowledged STOPs whose pair is not ``OptOut`` in the consent API. Must be 0.
- **duplicates**: a ``soak #N`` delivered more than once. Must be 0.
- **errors**: any answer other than forwarded (200/201) or refused for consent (400 with
  21610 / SMS-RC-413), any STOP not acknowledged, any client-side timeout; reported as a rate.
- **memory**: the gateway's RSS sampled every second; start (after the first 10 % of the run),
  end, peak and least-squares slope in KiB per minute.

One JSON document on stdout; a summary on stderr. Exit status 0 only when nothing was sent after
a STOP, no STOP was lost, nothing was duplicated, and the error rate is below ``--max-error-rate``.

    .venv/bin/python bench/soak.py                       # 600 s
    .venv/bin/python bench/soak.py --duration 10 --rate 20 --stop-rate 2   # the CI smoke
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from gateway.carriersim.state import SimCredentials  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

SIM = SimCredentials()
BUSINESS = "+16505550100"
BRAND = "Acme Soak"
ADMIN_TOKEN = "soak-admin-token"
CONSENTS = "/restapi/v2/accounts/~/sms/consents"
TWILIO_SEND = f"/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json"
RC_SMS = "/restapi/v1.0/account/~/extension/~/sms"
REQUEST_TIMEOUT = 15.0
MAX_IN_FLIGHT = 256
# Area codes in service; 555-0100..0199 in each is reserved for fiction.
AREAS = " ".join(
    (
        "201 202 203 205 206 207 208 209 210 212 213 214 215 216 217 218 219 224 225 228 229 231",
        "234 239 240 248 251 252 253 254 256 260 262 267 269 270 276 281 301 302 303 304 305 307",
        "308 309 310 312 313 314 315 316 317 318 319 320 321 323 330 334 336 337 339 347 351 352",
    )
).split()


def customers(count: int) -> list[str]:
    pool = [f"+1{area}555{line:04d}" for area in AREAS for line in range(100, 200)]
    if count > len(pool):
        raise SystemExit(f"at most {len(pool)} customers")
    return pool[:count]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def slope_per_minute(samples: Sequence[tuple[float, int]]) -> float | None:
    """Least-squares slope of (seconds, KiB) in KiB per minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60


@dataclass
class Send:
    number: int
    dialect: str
    to: str
    started: float
    status: int | None = None
    outcome: str = "pending"
    """forwarded | refused | error"""


@dataclass
class Soak:
    gateway: str
    sim: str
    gateway_pid: int
    pool: list[str]
    rc_token: str = ""
    sends: list[Send] = field(default_factory=list)
    stop_acked: dict[str, float] = field(default_factory=dict)
    """customer -> monotonic time the acknowledgement came back (the ack is no later)."""
    stop_failed: list[str] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[float, int]] = field(default_factory=list)
    skipped: int = 0


def sim_wall_to_monotonic(received_at: str, offset: float) -> float:
    from datetime import datetime

    return datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp() - offset


async def one_send(soak: Soak, http: aiohttp.ClientSession, send: Send) -> None:
    text = f"soak #{send.number}"
    try:
        if send.dialect == "twilio":
            reply = await http.post(
                soak.gateway + TWILIO_SEND,
                data={"To": send.to, "From": BUSINESS, "Body": text},
                headers={"Authorization": basic(SIM.twilio_account_sid, SIM.twilio_auth_token)},
            )
        else:
            reply = await http.post(
                soak.gateway + RC_SMS,
                json={
                    "from": {"phoneNumber": BUSINESS},
                    "to": [{"phoneNumber": send.to}],
                    "text": text,
                },
                headers={"Authorization": f"Bearer {soak.rc_token}"},
            )
        async with reply:
            body = await reply.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        send.outcome = "error"
        soak.errors[f"send {type(exc).__name__}"] += 1
        return
    send.status = reply.status
    if reply.status in (200, 201):
        send.outcome = "forwarded"
    elif reply.status == 400 and (b"21610" in body or b"SMS-RC-413" in body):
        send.outcome = "refused"
    else:
        send.outcome = "error"
        soak.errors[f"send {reply.status}"] += 1


async def one_stop(soak: Soak, http: aiohttp.ClientSession, provider: str, customer: str) -> None:
    spec = {
        "provider": provider,
        "from": customer,
        "to": BUSINESS,
        "text": "STOP",
        "gateway": soak.gateway,
    }
    try:
        async with http.post(soak.sim + "/sim/inbound", json=spec) as reply:
            answer = await reply.json()
            ok = reply.status == 200 and 200 <= int(answer.get("status") or 0) < 300
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        soak.errors[f"stop {type(exc).__name__}"] += 1
        soak.stop_failed.append(customer)
        return
    if ok:
        soak.stop_acked[customer] = time.monotonic()
    else:
        soak.errors[f"stop answered {answer.get('status')}"] += 1
        soak.stop_failed.append(customer)


async def one_read(soak: Soak, http: aiohttp.ClientSession, customer: str) -> None:
    try:
        async with http.get(
            soak.gateway + CONSENTS,
            params={"to": customer},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as reply:
            await reply.read()
            soak.reads[str(reply.status)] += 1
            if reply.status != 200:
                soak.errors[f"read {reply.status}"] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        soak.errors[f"read {type(exc).__name__}"] += 1


async def sample_memory(soak: Soak, started: float, until: float) -> None:
    while time.monotonic() < until:
        value = rss_kib(soak.gateway_pid)
        if value is not None:
            soak.rss.append((time.monotonic() - started, value))
        await asyncio.sleep(1.0)


async def rc_login(soak: Soak, http: aiohttp.ClientSession) -> str:
    async with http.post(
        soak.gateway + "/restapi/oauth/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": SIM.rc_jwt},
        headers={"Authorization": basic(SIM.rc_client_id, SIM.rc_client_secret)},
    ) as reply:
        if reply.status != 200:
            raise SystemExit(f"RingCentral login through the gateway: {reply.status}")
        return str((await reply.json())["access_token"])


async def drive(soak: Soak, duration: float, rate: float, stop_rate: float, seed: int) -> float:
    """Run the load; returns the wall-clock minus monotonic offset (to read sim timestamps)."""
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        soak.rc_token = await rc_login(soak, http)
        not_stopped = list(soak.pool)
        rng.shuffle(not_stopped)
        in_flight: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        until = started + duration
        memory = asyncio.create_task(sample_memory(soak, started, until))

        def launch(coro: Any) -> None:
            if len(in_flight) >= MAX_IN_FLIGHT:
                soak.skipped += 1
                coro.close()
                return
            task = asyncio.create_task(coro)
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        events: list[tuple[float, str]] = []
        events += [(i / rate, "send") for i in range(int(duration * rate))]
        events += [((i + 0.5) / stop_rate, "stop") for i in range(int(duration * stop_rate))]
        events += [(i + 0.25, "read") for i in range(int(duration))]
        events.sort()
        stops = 0
        for offset, kind in events:
            delay = started + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == "send":
                send = Send(
                    number=len(soak.sends),
                    dialect="twilio" if len(soak.sends) % 2 == 0 else "ringcentral",
                    to=rng.choice(soak.pool),
                    started=time.monotonic(),
                )
                soak.sends.append(send)
                launch(one_send(soak, http, send))
            elif kind == "stop" and not_stopped:
                provider = "twilio" if stops % 2 == 0 else "ringcentral"
                stops += 1
                launch(one_stop(soak, http, provider, not_stopped.pop()))
            elif kind == "read":
                launch(one_read(soak, http, rng.choice(soak.pool)))
        if in_flight:
            await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT + 5)
        await memory
        return time.time() - time.monotonic()


async def verify(soak: Soak, offset: float) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.get(soak.sim + "/sim/messages") as reply:
            delivered = (await reply.json())["messages"]
        not_opted_out: list[str] = []
        for customer in soak.stop_acked:
            async with http.get(
                soak.gateway + CONSENTS,
                params={"to": customer},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as reply:
                records = (await reply.json()).get("records", [])
            if not any(
                r.get("from") == BUSINESS and r.get("optStatus") == "OptOut" for r in records
            ):
                not_opted_out.append(customer)
    by_number: Counter[int] = Counter()
    after_stop: list[dict[str, Any]] = []
    for message in delivered:
        text = message.get("text", "")
        if not text.startswith("soak #"):
            continue  # a STOP confirmation
        number = int(text.split("#", 1)[1])
        by_number[number] += 1
        send = soak.sends[number]
        acked = soak.stop_acked.get(send.to)
        if acked is not None and send.started > acked:
            after_stop.append(
                {
                    "send": number,
                    "to": send.to,
                    "started_after_ack_s": round(send.started - acked, 4),
                    "delivered_after_ack_s": round(
                        sim_wall_to_monotonic(message["received_at"], offset) - acked, 4
                    ),
                }
            )
    said_forwarded_after_stop = [
        s.number
        for s in soak.sends
        if s.outcome == "forwarded"
        and s.to in soak.stop_acked
        and s.started > soak.stop_acked[s.to]
    ]
    outcomes = Counter(s.outcome for s in soak.sends)
    forwarded = sum(1 for s in soak.sends if s.outcome == "forwarded")
    refused_after_stop = sum(
        1
        for s in soak.sends
        if s.outcome == "refused" and s.to in soak.stop_acked and s.started > soak.stop_acked[s.to]
    )
    requests = (
        len(soak.sends) + len(soak.stop_acked) + len(soak.stop_failed) + sum(soak.reads.values())
    )
    errors = sum(soak.errors.values())
    measured = [(t, v) for t, v in soak.rss if t >= (soak.rss[-1][0] if soak.rss else 0) * 0.1]
    return {
        "sends": len(soak.sends),
        "send_outcomes": dict(outcomes),
        "delivered_sends": sum(by_number.values()),
        "forwarded_answers": forwarded,
        "refused_after_stop": refused_after_stop,
        "stops_acknowledged": len(soak.stop_acked),
        "stops_not_acknowledged": len(soak.stop_failed),
        "consent_reads": dict(soak.reads),
        "skipped_overload": soak.skipped,
        "sent_after_stop": len(after_stop)
        + len([n for n in said_forwarded_after_stop if n not in {a["send"] for a in after_stop}]),
        "sent_after_stop_detail": after_stop[:20],
        "lost_stops": len(not_opted_out),
        "lost_stop_detail": not_opted_out[:20],
        "duplicated_sends": sum(1 for c in by_number.values() if c > 1),
        "errors": dict(soak.errors),
        "error_rate": errors / requests if requests else 0.0,
        "rss_kib": {
            "start": measured[0][1] if measured else None,
            "end": measured[-1][1] if measured else None,
            "peak": max(v for _, v in soak.rss) if soak.rss else None,
            "slope_per_min": slope_per_minute(measured),
            "slope_second_half_per_min": slope_per_minute(
                [(t, v) for t, v in measured if t >= measured[-1][0] / 2] if measured else []
            ),
            "samples": len(soak.rss),
            "series": soak.rss[:: max(len(soak.rss) // 20, 1)],
        },
    }


def fmt(slope: float | None) -> str:
    return "n/a" if slope is None else f"{slope:+.1f}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--rate", type=float, default=50.0, help="sends per second")
    parser.add_argument("--stop-rate", type=float, default=2.0, help="STOPs per second")
    parser.add_argument("--customers", type=int, default=5000, help="customer pool size")
    parser.add_argument("--store", help="store URL (default: a fresh SQLite file)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--max-error-rate", type=float, default=0.001)
    parser.add_argument("--json", type=Path, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pool = customers(args.customers)
    if args.stop_rate * args.duration > len(pool):
        raise SystemExit("more STOPs than customers: raise --customers")
    script = Path(sys.executable).parent / "stopgate"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOPGATE_", "TWILIO_"))}
    with tempfile.TemporaryDirectory(prefix="stopgate-soak-") as work_dir:
        work = Path(work_dir)
        store = args.store or f"sqlite:///{work / 'soak.db'}"
        sim = ServiceProcess(
            "carrier-sim",
            [*command, "carrier-sim", "--listen", "{listen}"],
            health_path="/sim/health",
            log_dir=work,
            env={**env, "STOPGATE_LOG_LEVEL": "WARNING"},
            cwd=ROOT,
        )
        with sim:
            gateway = ServiceProcess(
                "gateway",
                [*command, "serve", "--listen", "{listen}", "--store", store],
                health_path="/healthz",
                log_dir=work,
                env={
                    **env,
                    "STOPGATE_RINGCENTRAL_UPSTREAM": sim.url,
                    "STOPGATE_TWILIO_UPSTREAM": sim.url,
                    "STOPGATE_TWILIO_AUTH_TOKEN": SIM.twilio_auth_token,
                    "STOPGATE_ADMIN_TOKEN": ADMIN_TOKEN,
                    "STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN": SIM.rc_verification_token,
                    "STOPGATE_RINGCENTRAL_CLIENT_ID": SIM.rc_client_id,
                    "STOPGATE_RINGCENTRAL_CLIENT_SECRET": SIM.rc_client_secret,
                    "STOPGATE_RINGCENTRAL_JWT": SIM.rc_jwt,
                    "STOPGATE_PUBLIC_URL": "http://{listen}",
                    "STOPGATE_SPOOL_PATH": str(work / "spool.jsonl"),
                    "STOPGATE_BRAND_NAME": BRAND,
                    "STOPGATE_LOG_LEVEL": "WARNING",
                },
                cwd=ROOT,
                start_timeout=60.0,
            )
            with gateway:
                assert gateway.pid is not None
                soak = Soak(gateway.url, sim.url, gateway.pid, pool)
                offset = asyncio.run(
                    drive(soak, args.duration, args.rate, args.stop_rate, args.seed)
                )
                result = asyncio.run(verify(soak, offset))
                result["gateway_stderr_tail"] = gateway.tail(20) if result["errors"] else ""
    result["config"] = {
        "duration_s": args.duration,
        "send_rate": args.rate,
        "stop_rate": args.stop_rate,
        "customers": args.customers,
        "store": "postgresql" if args.store else "sqlite",
    }
    document = json.dumps(result, indent=2)
    print(document)
    if args.json:
        args.json.write_text(document + "\n", encoding="utf-8")
    rss = result["rss_kib"]
    print(
        f"soak {args.duration:g} s: {result['sends']} sends ({result['send_outcomes']}),"
        f" {result['stops_acknowledged']} STOPs acknowledged,"
        f" {result['stops_not_acknowledged']} not\n"
        f"  sent after an acknowledged STOP: {result['sent_after_stop']};"
        f" lost STOPs: {result['lost_stops']}; duplicated: {result['duplicated_sends']}\n"
        f"  error rate: {result['error_rate']:.5f} {result['errors']}\n"
        f"  gateway RSS KiB: start {rss['start']} end {rss['end']} peak {rss['peak']}"
        f" slope {fmt(rss['slope_per_min'])} KiB/min"
        f" (second half {fmt(rss['slope_second_half_per_min'])})",
        file=sys.stderr,
    )
    ok = (
        result["sent_after_stop"] == 0
        and result["lost_stops"] == 0
        and result["duplicated_sends"] == 0
        and result["error_rate"] <= args.max_error_rate
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
