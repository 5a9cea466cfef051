"""The store disappears under load: PostgreSQL refuses the gateway and kills its connections.

A real ``stopgate serve`` on PostgreSQL, logged in as a role of its own; the fault is the one an
operator or a failover produces: the role may no longer log in (``ALTER ROLE … NOLOGIN``) and
every backend of it is terminated (``pg_terminate_backend``), so the pool's connections die and
every reconnect is refused. Meanwhile an app keeps sending through the gateway, and customers
text STOP and START through the carrier simulator.

Observed from outside: every send is refused with 503 in its dialect's shape and nothing reaches
the simulator; STOPs and STARTs are spooled and acknowledged (503 only while the spool cannot be
written either); ``/readyz`` is red. When the role may log in again, the same process recovers by
itself (no restart) within 1 s: sends are decided again, the spool drains in order into the
store, the confirmations queued with the spooled STOPs go out.
"""

from __future__ import annotations

import contextlib
import resource
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import requests

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    CONSENTS,
    HTTP_TIMEOUT,
    REPO,
    SIM,
    Stack,
    clean_environment,
    reported,
    stopgate_command,
)
from tests.e2e.test_inbound import (
    DECISION,
    KEYWORD,
    STORE_QUERY,
    Gateway,
    fictional,
    inbound_env,
    running,
    store_locked,
    wait_until,
)
from tests.support import postgres
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.e2e

RECOVERY_LIMIT = 1.0
"""Seconds from the store's return until sends are decided again and the spool has drained."""
POLL = 0.01
SHAPES = {"twilio": ("code", 20503), "ringcentral": ("errorCode", "STOPGATE-503")}


@dataclass(frozen=True)
class Database:
    """A login role owning a fresh schema on the test server; the gateway connects as it."""

    admin_url: str
    role: str
    store_url: str

    def execute(self, *statements: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url, timeout=10)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        postgres.run_async(run)

    def take_away(self) -> None:
        """The gateway may no longer log in, and loses every connection it has."""
        self.execute(
            f'ALTER ROLE "{self.role}" NOLOGIN',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{self.role}'",
        )

    def give_back(self) -> None:
        self.execute(f'ALTER ROLE "{self.role}" LOGIN')


@pytest.fixture
def database() -> Iterator[Database]:
    with contextlib.ExitStack() as resources:
        base = resources.enter_context(postgres.server_or_skip())
        role = f"sgf_{secrets.token_hex(6)}"
        parts = urlsplit(base)
        as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        database = Database(base, role, postgres.with_option(as_role, "schema", role))
        database.execute(
            f'CREATE ROLE "{role}" LOGIN', f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"'
        )
        try:
            yield database
        finally:
            database.execute(
                f'ALTER ROLE "{role}" LOGIN',
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
                f'DROP SCHEMA IF EXISTS "{role}" CASCADE',
                f'DROP ROLE IF EXISTS "{role}"',
            )


@contextlib.contextmanager
def postgres_gateway(
    name: str, sim_url: str, store_url: str, spool: Path, log_dir: Path
) -> Iterator[Gateway]:
    process = ServiceProcess(
        name,
        stopgate_command("serve", "--listen", "{listen}", "--store", store_url),
        health_path="/healthz",
        log_dir=log_dir,
        env=clean_environment(
            STOPGATE_RINGCENTRAL_UPSTREAM=sim_url,
            STOPGATE_TWILIO_UPSTREAM=sim_url,
            STOPGATE_TWILIO_AUTH_TOKEN=SIM.twilio_auth_token,
            STOPGATE_ADMIN_TOKEN=ADMIN_TOKEN,
            **inbound_env(SIM, spool),
        ),
        cwd=REPO,
        start_timeout=60.0,
    )
    with process, reported(process):
        # ``store`` is only read by the SQLite lock helper; this gateway has no file store.
        gateway = Gateway(process, sim_url, log_dir / "no-sqlite-store", spool)
        try:
            yield gateway
        finally:
            gateway.http.close()


@dataclass
class Load:
    """An app sending in a loop, both dialects in turn, to ``customers``; every answer kept."""

    gateway: Gateway
    customers: list[str]
    answers: list[tuple[float, float, str, int, dict[str, Any]]] = field(default_factory=list)
    """(started, ended, dialect, status, JSON body)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def run(self) -> None:
        n = 0
        while not self._stop.is_set():
            dialect = "twilio" if n % 2 == 0 else "ringcentral"
            started = time.monotonic()
            reply = self.gateway.send(dialect, self.customers[n % len(self.customers)])
            body = reply.json() if reply.content else {}
            self.answers.append((started, time.monotonic(), dialect, reply.status_code, body))
            n += 1
            time.sleep(0.005)

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self.run, name="app-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(HTTP_TIMEOUT * 2)

    def forwarded(self) -> int:
        return sum(1 for _, _, _, status, _ in self.answers if status in (200, 201))

    def after(self, moment: float, until: float = float("inf")) -> list[tuple[str, int, Any]]:
        return [
            (dialect, status, body.get(SHAPES[dialect][0]))
            for started, ended, dialect, status, body in self.answers
            if started >= moment and ended <= until
        ]


def readyz(gateway: Gateway) -> int:
    return requests.get(f"{gateway.url}/readyz", timeout=HTTP_TIMEOUT).status_code


def send_status(gateway: Gateway, provider: str, customer: str) -> int:
    return gateway.send(provider, customer).status_code


def test_postgres_taken_away_mid_load_fails_closed_spools_and_recovers_within_a_second(
    stack: Stack, database: Database, tmp_path: Path
) -> None:
    numbers = fictional("469")
    loaded = [next(numbers) for _ in range(4)]
    stoppers = {"twilio": next(numbers), "ringcentral": next(numbers)}
    flip_flop = next(numbers)  # STOP then START while the store is away: order matters
    opted_out = next(numbers)  # opted out before the fault
    late = next(numbers)  # STOP while neither the store nor the spool can take it
    spool_dir = tmp_path / "spool-volume"
    spool_dir.mkdir()
    spool = spool_dir / "spool.jsonl"

    with postgres_gateway(
        "gw-store-faults", stack.sim_url, database.store_url, spool, tmp_path
    ) as gw:
        pid = gw.process.pid
        gw.http.patch(
            f"{gw.url}/restapi/v2/accounts/~/sms/consents",
            json={"records": [{"from": BUSINESS, "to": opted_out, "optStatus": "OptOut"}]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ).raise_for_status()
        for provider in ("twilio", "ringcentral"):
            gw.assert_refused(provider, opted_out)
            for customer in [*loaded, *stoppers.values(), flip_flop]:
                gw.assert_allowed(provider, customer)  # cached "allowed" everywhere
        assert readyz(gw) == 200

        app = Gateway(gw.process, gw.sim_url, gw.store, gw.spool)
        with Load(app, loaded) as load:
            time.sleep(0.3)
            forwarded_before = load.forwarded()
            assert forwarded_before > 0, load.answers

            database.take_away()
            wait_until(lambda: readyz(gw) == 503, 10.0, "/readyz red")
            red = time.monotonic()
            ready = gw.http.get(f"{gw.url}/readyz", timeout=HTTP_TIMEOUT).json()
            assert ready["status"] == "unready"

            # Every send now: 503 in its dialect's shape, never forwarded.
            for provider in ("twilio", "ringcentral"):
                for customer in (loaded[0], opted_out, stoppers[provider]):
                    reply = gw.send(provider, customer)
                    key, code = SHAPES[provider]
                    assert reply.status_code == 503, reply.text
                    assert reply.json()[key] == code, reply.text
                    assert reply.headers[DECISION].startswith("refused;"), reply.headers

            # Inbound keywords: spooled and acknowledged.
            for provider, customer in stoppers.items():
                answer = gw.inbound(provider, customer, BUSINESS, "STOP")
                assert (answer["status"], answer["headers"][KEYWORD]) == (200, "opt_out"), answer
            for text in ("STOP", "START"):
                assert gw.inbound("twilio", flip_flop, BUSINESS, text)["status"] == 200
            assert gw.spool_size() > 0

            # Neither the store nor the spool: 503, so the carrier may retry.
            spool_dir.rename(tmp_path / "spool-volume-gone")
            refused = gw.inbound("twilio", late, BUSINESS, "STOP")
            assert refused["status"] == 503, refused
            (tmp_path / "spool-volume-gone").rename(spool_dir)
            assert gw.inbound("twilio", late, BUSINESS, "STOP")["status"] == 200  # the retry

            time.sleep(0.5)  # the load keeps running against the absent store
            database.give_back()
            back = time.monotonic()

            probes: list[int] = []

            def recovered() -> bool:
                probes.append(send_status(gw, "twilio", loaded[1]))
                return probes[-1] == 201 and readyz(gw) == 200

            wait_until(recovered, 10.0, "sends decided again")
            sends_back = time.monotonic() - back
            wait_until(lambda: gw.spool_size() == 0, 10.0, "empty spool")
            drained = time.monotonic() - back
            time.sleep(0.3)

        during = load.after(red, back)
        assert during, "the load sent nothing while the store was away"
        assert {(d, s, c) for d, s, c in during} <= {
            ("twilio", 503, 20503),
            ("ringcentral", 503, "STOPGATE-503"),
        }, during
        # Each forwarded answer is one delivery, and nothing else reached the customers.
        delivered = sum(len(gw.delivered(c)) for c in loaded)
        warm_up = 2 * len(loaded)  # assert_allowed in both dialects
        assert delivered == warm_up + load.forwarded() + probes.count(201)

        assert gw.process.pid == pid  # the same process: no restart
        for provider, customer in stoppers.items():
            # Failed once in CI (2026-11-24, c13ec30): empty after the spool drained; the
            # gateway's log says what became of the STOP.
            assert gw.history(customer) == [(BUSINESS, "OptOut", "Recipient")], (
                provider,
                gw.process.tail(400),
            )
            gw.assert_refused(provider, customer)
        gw.assert_refused("twilio", late)
        # Drained in order: the STOP before the START, so the pair ends opted in.
        assert gw.history(flip_flop) == [
            (BUSINESS, "OptOut", "Recipient"),
            (BUSINESS, "OptIn", "Recipient"),
        ]
        gw.assert_allowed("twilio", flip_flop)
        gw.wait_confirmations(stoppers["ringcentral"])
        print(
            f"\nstore faults (PostgreSQL): {len(during)} sends while away, all 503;"
            f" sends decided again {sends_back * 1000:.0f} ms and spool drained"
            f" {drained * 1000:.0f} ms after the store came back"
        )
        assert sends_back < RECOVERY_LIMIT
        assert drained < RECOVERY_LIMIT


def test_sqlite_unwritable_mid_load_spools_stops_refuses_writes_and_drains_within_a_second(
    stack: Stack, tmp_path: Path
) -> None:
    """SQLite: another process holds the write lock (writes time out after 0.2 s), while the
    file can still be read. Consent is still determinable, so sends are still decided (from
    the store plus what is spooled); STOPs are spooled and enforced at once; a consent PATCH is
    a clean 503; released, the spool drains within a second, in order, in the same process."""
    numbers = fictional("470")
    loaded = [next(numbers) for _ in range(4)]
    stopper, flip_flop = next(numbers), next(numbers)
    store, spool = tmp_path / "unwritable.db", tmp_path / "unwritable-spool.jsonl"
    with running("gw-sqlite-faults", stack.sim_url, store, spool, tmp_path, STORE_QUERY) as gw:
        pid = gw.process.pid
        for customer in [*loaded, stopper, flip_flop]:
            gw.assert_allowed("ringcentral", customer)
        app = Gateway(gw.process, gw.sim_url, gw.store, gw.spool)
        with Load(app, loaded) as load:
            time.sleep(0.3)
            with store_locked(store):
                locked = time.monotonic()
                answer = gw.inbound("ringcentral", stopper, BUSINESS, "STOP")
                assert (answer["status"], answer["headers"][KEYWORD]) == (200, "opt_out")
                for text in ("STOP", "START"):
                    assert gw.inbound("twilio", flip_flop, BUSINESS, text)["status"] == 200
                assert gw.spool_size() > 0
                gw.assert_refused("ringcentral", stopper)  # enforced from the spool
                gw.assert_allowed("twilio", flip_flop)  # START after STOP, in order
                patch = gw.http.patch(
                    f"{gw.url}{CONSENTS}",
                    json={"records": [{"from": BUSINESS, "to": loaded[0], "optStatus": "OptOut"}]},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=HTTP_TIMEOUT,
                )
                assert patch.status_code == 503, patch.text
                time.sleep(0.3)
                unlocked = time.monotonic()
            wait_until(lambda: gw.spool_size() == 0, 10.0, "empty spool")
            drained = time.monotonic() - unlocked
            time.sleep(0.2)

        during = load.after(locked, unlocked)
        assert during and {status for _, status, _ in during} <= {200, 201}, during
        assert gw.process.pid == pid
        assert gw.history(stopper) == [(BUSINESS, "OptOut", "Recipient")]
        assert gw.history(flip_flop) == [
            (BUSINESS, "OptOut", "Recipient"),
            (BUSINESS, "OptIn", "Recipient"),
        ]
        assert gw.consents(loaded[0]) == []  # the refused PATCH left nothing behind
        gw.wait_confirmations(stopper)
        print(f"\nstore faults (SQLite write lock): spool drained {drained * 1000:.0f} ms after")
        assert drained < RECOVERY_LIMIT


@contextlib.contextmanager
def no_file_writes(pid: int) -> Iterator[None]:
    """Disk full, for one process: its file-size limit drops to one byte, so every write to a
    file (the store, its WAL, the spool) fails with EFBIG while sockets work; restored on exit.
    Lowering and restoring a soft limit of one's own child needs no privilege."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def test_sqlite_disk_full_refuses_the_stop_until_the_spool_can_take_it(
    stack: Stack, tmp_path: Path
) -> None:
    """Neither the store nor the spool can be written (the gateway may not write files at
    all): a STOP is answered 503 so the carrier retries, sends stay decided (refusals still
    stand), and once writes work again the carrier's retry is recorded, with no restart."""
    numbers = fictional("470")
    for _ in range(20):
        next(numbers)  # the numbers of the test above
    opted_out, customer = next(numbers), next(numbers)
    store, spool = tmp_path / "full.db", tmp_path / "full-spool.jsonl"
    with running("gw-disk-full", stack.sim_url, store, spool, tmp_path, STORE_QUERY) as gw:
        assert gw.process.pid is not None
        gw.http.patch(
            f"{gw.url}{CONSENTS}",
            json={"records": [{"from": BUSINESS, "to": opted_out, "optStatus": "OptOut"}]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ).raise_for_status()
        gw.assert_allowed("twilio", customer)
        with no_file_writes(gw.process.pid):
            answer = gw.inbound("twilio", customer, BUSINESS, "STOP")
            assert answer["status"] == 503, answer
            assert gw.spool_size() == 0
            gw.assert_refused("twilio", opted_out)  # its blocked-log line cannot be written
            gw.assert_allowed("twilio", customer)  # no STOP was acknowledged
        answer = gw.inbound("twilio", customer, BUSINESS, "STOP")  # the carrier's retry
        assert (answer["status"], answer["headers"][KEYWORD]) == (200, "opt_out"), answer
        gw.assert_refused("twilio", customer)
        assert gw.history(customer) == [(BUSINESS, "OptOut", "Recipient")]
