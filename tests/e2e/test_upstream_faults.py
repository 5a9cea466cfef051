"""The carrier misbehaves: the simulator's fault modes between a real gateway and the carrier.

Each fault hits exactly one carrier request (``count: 1``), so a retry by Stopgate would meet a
healthy carrier and show up as a delivery: the simulator's ``/sim/messages`` counts what was
really sent. Expected, per DESIGN: a carrier 5xx is relayed as it is; no connection or a reset
is 502 and no answer in time is 504, both in the dialect's own error shape; nothing is ever
sent twice; the next send after the fault goes through (the connection pool recovers); and the
gateway's memory stays flat over many faulted requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.e2e.conftest import HTTP_TIMEOUT, Stack, gateway_process, reported
from tests.e2e.test_inbound import DECISION, Gateway, fictional, sim_faults

pytestmark = pytest.mark.e2e

UPSTREAM_TIMEOUT = 1.5
"""The gateway's ``upstream_timeout`` here: long enough for a loaded machine, short for a test."""
OK = {"twilio": 201, "ringcentral": 200}
SHAPE_KEY = {"twilio": "code", "ringcentral": "errorCode"}
GATEWAY_CODES = {
    ("twilio", 502): 20500,
    ("twilio", 504): 20500,
    ("ringcentral", 502): "STOPGATE-502",
    ("ringcentral", 504): "STOPGATE-504",
}
CARRIER_CODES = {
    ("twilio", 503): 20503,
    ("twilio", 500): 20500,
    ("ringcentral", 503): "CMN-201",
    ("ringcentral", 500): "CMN-500",
}

_customers = fictional("479")


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("e2e-upstream-faults")
    process = gateway_process(
        "gateway-upstream-faults",
        sim_url=stack.sim_url,
        store=work / "upstream-faults.db",
        log_dir=work,
        STOPGATE_UPSTREAM_TIMEOUT=str(UPSTREAM_TIMEOUT),
        STOPGATE_LOG_LEVEL="WARNING",
    )
    with process, reported(process):
        gw = Gateway(process, stack.sim_url, work / "upstream-faults.db", work / "spool.jsonl")
        # Credentials checked (and RingCentral's cached) before any fault is planned.
        for provider in OK:
            gw.assert_allowed(provider, next(_customers))
        yield gw
        gw.http.close()


def fault_plan(sim_url: str) -> dict[str, Any]:
    plan: dict[str, Any] = requests.get(f"{sim_url}/sim/faults", timeout=HTTP_TIMEOUT).json()
    return plan


# (plan, what the app gets: "ok" or a status, deliveries the fault leaves, whose status)
CASES: list[tuple[dict[str, Any], str | int, int, str]] = [
    ({"mode": "5xx", "status": 503}, 503, 0, "carrier"),
    ({"mode": "5xx", "status": 500}, 500, 0, "carrier"),
    ({"mode": "slow", "delay_seconds": 0.3}, "ok", 1, "carrier"),
    ({"mode": "slow", "delay_seconds": UPSTREAM_TIMEOUT + 1.5}, 504, 1, "gateway"),
    ({"mode": "timeout", "delay_seconds": 30}, 504, 0, "gateway"),
    ({"mode": "reset"}, 502, 0, "gateway"),
    ({"mode": "half-body"}, 502, 1, "gateway"),
]


@pytest.mark.parametrize("provider", list(OK))
@pytest.mark.parametrize(
    ("plan", "answer", "deliveries", "shape"),
    CASES,
    ids=[f"{c[0]['mode']}-{c[0].get('status', c[0].get('delay_seconds', ''))}" for c in CASES],
)
def test_a_carrier_fault_is_relayed_faithfully_never_duplicated_and_recovered_from(
    gateway: Gateway,
    provider: str,
    plan: dict[str, Any],
    answer: str | int,
    deliveries: int,
    shape: str,
) -> None:
    customer = next(_customers)
    with sim_faults(gateway.sim_url, count=1, **plan):
        reply = gateway.send(provider, customer)
        assert fault_plan(gateway.sim_url)["mode"] == "none"  # the one faulted request was ours

    expected = OK[provider] if answer == "ok" else answer
    assert reply.status_code == expected, reply.text
    if answer != "ok":
        body = reply.json()
        codes = CARRIER_CODES if shape == "carrier" else GATEWAY_CODES
        assert body[SHAPE_KEY[provider]] == codes[(provider, expected)], body
        decision = reply.headers[DECISION]
        assert decision.startswith("allowed" if shape == "carrier" else "refused;"), decision
        if shape == "gateway":
            # The request went out: the app is told the send may have happened (no blind retry).
            assert "may or may not have been accepted" in body["message"], body
    if plan["mode"] == "slow":
        time.sleep(plan["delay_seconds"] + 0.2)  # the parked answer has been written by now
    assert len(gateway.delivered(customer)) == deliveries  # never sent twice

    gateway.assert_allowed(provider, customer)  # the pool recovers: the next send goes through
    assert len(gateway.delivered(customer)) == deliveries + 1


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


FAULT_ROUNDS: list[tuple[dict[str, Any], int]] = [
    ({"mode": "reset"}, 120),
    ({"mode": "5xx", "status": 503}, 120),
    ({"mode": "half-body"}, 120),
    ({"mode": "timeout", "delay_seconds": 30}, 24),
]
THREADS = 12
RSS_GROWTH_LIMIT_KIB = 4096


def test_memory_stays_flat_over_many_faulted_requests(gateway: Gateway) -> None:
    assert gateway.process.pid is not None
    pid = gateway.process.pid
    customers = [next(_customers) for _ in range(8)]
    token = gateway.rc_token()  # logged in before any fault
    sessions: dict[int, Gateway] = {}

    def send(n: int) -> int:
        # One HTTP session per worker thread (a requests session is not thread-safe).
        me = sessions.get(threading.get_ident())
        if me is None:
            me = Gateway(gateway.process, gateway.sim_url, gateway.store, gateway.spool)
            me._rc_token = token
            sessions[threading.get_ident()] = me
        provider = "twilio" if n % 2 == 0 else "ringcentral"
        return me.send(provider, customers[n % len(customers)]).status_code

    def one_pass(pool: ThreadPoolExecutor) -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {}
        for plan, requests_count in FAULT_ROUNDS:
            with sim_faults(gateway.sim_url, **plan):
                statuses = list(pool.map(send, range(requests_count)))
            seen[plan["mode"]] = sorted(set(statuses))
        return seen

    with ThreadPoolExecutor(THREADS) as pool:
        one_pass(pool)  # warm-up: every code path and buffer allocated once
        before = rss_kib(pid)
        passes = [one_pass(pool) for _ in range(3)]
        after = rss_kib(pid)
    for session in sessions.values():
        session.http.close()

    faulted = 3 * sum(count for _, count in FAULT_ROUNDS)
    print(
        f"\nupstream faults: {faulted} faulted sends after warm-up;"
        f" gateway RSS {before} -> {after} KiB ({after - before:+d} KiB)"
    )
    for seen in passes:
        assert seen == {"reset": [502], "5xx": [503], "half-body": [502], "timeout": [504]}, seen
    assert after - before < RSS_GROWTH_LIMIT_KIB
    count = len(gateway.delivered(customers[0]))
    gateway.assert_allowed("twilio", customers[0])  # still sending
    assert len(gateway.delivered(customers[0])) == count + 1
