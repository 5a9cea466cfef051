"""Two gateway processes on one PostgreSQL database: a STOP taken by one is honoured by the
other within 100 ms, also right after the other lost its database connections."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.conftest import BUSINESS, SIM, TWILIO_SEND
from tests.e2e.conftest import (
    ADMIN_TOKEN,
    Stack,
    clean_environment,
    reported,
    stopgate_command,
)
from tests.support import postgres
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.e2e

AUTH = (SIM.twilio_account_sid, SIM.twilio_auth_token)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[str, str]]:
    """(base server URL, store URL on a fresh schema)."""
    with postgres.server_or_skip() as base, postgres.schema(base) as url:
        yield base, url


def gateway(name: str, stack: Stack, store: str, tmp_path: Path) -> ServiceProcess:
    return ServiceProcess(
        name,
        stopgate_command(
            "serve",
            "--listen",
            "{listen}",
            "--store",
            postgres.with_option(store, "application_name", name),
        ),
        health_path="/healthz",
        log_dir=tmp_path,
        env=clean_environment(
            STOPGATE_RINGCENTRAL_UPSTREAM=stack.sim_url,
            STOPGATE_TWILIO_UPSTREAM=stack.sim_url,
            STOPGATE_TWILIO_AUTH_TOKEN=SIM.twilio_auth_token,
            STOPGATE_ADMIN_TOKEN=ADMIN_TOKEN,
            STOPGATE_SPOOL_PATH=str(tmp_path / f"{name}-spool.jsonl"),
            STOPGATE_LOG_LEVEL="WARNING",
        ),
        cwd=REPO,
    )


def send(url: str, customer: str) -> int:
    reply = requests.post(
        url + TWILIO_SEND,
        data={"To": customer, "From": BUSINESS, "Body": "x"},
        auth=AUTH,
        timeout=10,
    )
    return reply.status_code


def stop(url: str, customer: str) -> None:
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": SIM.twilio_account_sid,
        "From": customer,
        "To": BUSINESS,
        "Body": "STOP",
    }
    target = url + "/webhooks/twilio"
    signature = RequestValidator(SIM.twilio_auth_token).compute_signature(target, form)
    reply = requests.post(
        target,
        data=urlencode(form),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


def refused_within(url: str, customer: str, acknowledged: float) -> float:
    """Send until refused; fail if anything is forwarded 100 ms or more after the STOP."""
    while True:
        status = send(url, customer)
        elapsed = time.monotonic() - acknowledged
        if status == 400:
            return elapsed
        assert status == 201
        assert elapsed < 0.1, f"{customer}: forwarded {elapsed * 1000:.0f} ms after the STOP"
        time.sleep(0.002)


def test_a_stop_on_one_gateway_is_refused_by_the_other_within_100_ms(
    stack: Stack, database: tuple[str, str], tmp_path: Path
) -> None:
    _, store = database
    with (
        gateway("gw-a", stack, store, tmp_path) as a,
        reported(a),
        gateway("gw-b", stack, store, tmp_path) as b,
        reported(b),
    ):
        customers = [f"+1646555{n:04d}" for n in range(200)]
        for customer in customers:  # B's cache now says "allowed" for every pair
            assert send(b.url, customer) == 201
        worst = 0.0
        for customer in customers:
            stop(a.url, customer)
            worst = max(worst, refused_within(b.url, customer, time.monotonic()))
        assert worst < 0.1
        for customer in customers:  # and it stays refused
            assert send(b.url, customer) == 400


def test_killing_the_other_gateways_connections_lets_no_stale_allowed_through(
    stack: Stack, database: tuple[str, str], tmp_path: Path
) -> None:
    base, store = database
    with (
        gateway("gw-c", stack, store, tmp_path) as a,
        reported(a),
        gateway("gw-d", stack, store, tmp_path) as b,
        reported(b),
    ):
        customers = [f"+1646556{n:04d}" for n in range(30)]
        for customer in customers:
            assert send(b.url, customer) == 201

        async def terminate() -> int:
            conn = await asyncpg.connect(base)
            try:
                rows = await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'gw-d'"
                )
                return len(rows)
            finally:
                await conn.close()

        for customer in customers:
            assert postgres.run_async(terminate) >= 0
            stop(a.url, customer)
            refused_within(b.url, customer, time.monotonic())
        # The feed recovers by itself: B reports ready (not degraded) again.
        deadline = time.monotonic() + 10
        while requests.get(b.url + "/readyz", timeout=5).json().get("status") != "ready":
            assert time.monotonic() < deadline, "the change feed did not recover"
            time.sleep(0.1)
