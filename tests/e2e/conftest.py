"""The end-to-end stack: the carrier simulator and the gateway as two real processes.

``stopgate carrier-sim`` and ``stopgate serve`` are started once per session (each start costs
an interpreter and an import of aiohttp), on free ports, with a fresh SQLite store under the
session's tmp directory. Tests stay independent by using customer numbers no other test uses
(``new_customer``): consent is per pair and the simulator's ``/sim/messages`` filters by ``to``.

When a test fails, the last lines of both processes' stderr and stdout are attached to its
report (sections ``carrier-sim output`` and ``gateway output``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.carriersim.state import SimCredentials
from tests.support.processes import ServiceProcess

SIM = SimCredentials()
ADMIN_TOKEN = "e2e-admin-token"
BUSINESS = "+16505550100"
OTHER_BUSINESS = "+16505550199"
CONSENTS = "/restapi/v2/accounts/~/sms/consents"
REPO = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT = 10.0

_RUNNING: list[ServiceProcess] = []


def stopgate_command(*args: str) -> list[str]:
    """``stopgate …``: the console script of the interpreter running the tests (its venv, its
    gateway), or ``python -m gateway.cli`` where no script was installed."""
    script = Path(sys.executable).parent / "stopgate"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *args]
    return [sys.executable, "-m", "gateway.cli", *args]


def sqlite_url(store: Path, query: str = "") -> str:
    """The store URL of an SQLite file (``query``: e.g. ``busy_timeout=0.2``)."""
    return f"sqlite:///{store}" + (f"?{query}" if query else "")


def gateway_process(
    name: str, *, sim_url: str, store: Path, log_dir: Path, store_query: str = "", **env: str
) -> ServiceProcess:
    """``stopgate serve`` in front of the simulator at ``sim_url`` (not started yet).
    ``{listen}`` in an ``env`` value becomes the gateway's ``HOST:PORT``."""
    return ServiceProcess(
        name,
        stopgate_command(
            "serve", "--listen", "{listen}", "--store", sqlite_url(store, store_query)
        ),
        health_path="/healthz",
        log_dir=log_dir,
        env=clean_environment(
            STOPGATE_RINGCENTRAL_UPSTREAM=sim_url,
            STOPGATE_TWILIO_UPSTREAM=sim_url,
            STOPGATE_TWILIO_AUTH_TOKEN=SIM.twilio_auth_token,
            STOPGATE_ADMIN_TOKEN=ADMIN_TOKEN,
            **env,
        ),
        cwd=REPO,
    )


def clean_environment(**extra: str) -> dict[str, str]:
    """The test's environment without any ``STOPGATE_*`` or ``TWILIO_*`` of the developer's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STOPGATE_", "TWILIO_"))
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class Stack:
    sim: ServiceProcess
    gateway: ServiceProcess

    @property
    def sim_url(self) -> str:
        return self.sim.url

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    def delivered(self, to: str | None = None) -> list[dict[str, Any]]:
        """What the simulator handed to recipients (only ``to``'s entries when given)."""
        reply = requests.get(
            f"{self.sim_url}/sim/messages",
            params={"to": to} if to is not None else None,
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code == 200, reply.text
        messages: list[dict[str, Any]] = reply.json()["messages"]
        return messages

    def set_consent(self, *records: dict[str, Any]) -> dict[str, Any]:
        """Write records through the gateway's consent API, as an operator's script would."""
        reply = requests.patch(
            f"{self.gateway_url}{CONSENTS}",
            json={"records": list(records)},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    def opt_out(self, to: str, from_: str = BUSINESS) -> dict[str, Any]:
        return self.set_consent({"from": from_, "to": to, "optStatus": "OptOut"})


@contextlib.contextmanager
def reported(process: ServiceProcess) -> Iterator[ServiceProcess]:
    """Attach ``process``'s output to the report of any test that fails meanwhile."""
    _RUNNING.append(process)
    try:
        yield process
    finally:
        with contextlib.suppress(ValueError):
            _RUNNING.remove(process)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("e2e-processes")
    sim = ServiceProcess(
        "carrier-sim",
        stopgate_command("carrier-sim", "--listen", "{listen}"),
        health_path="/sim/health",
        log_dir=logs,
        env=clean_environment(),
        cwd=REPO,
    )
    with sim:
        _RUNNING.append(sim)
        gateway = gateway_process(
            "gateway", sim_url=sim.url, store=logs / "stopgate.db", log_dir=logs
        )
        try:
            with gateway:
                _RUNNING.append(gateway)
                yield Stack(sim, gateway)
        finally:
            _RUNNING.clear()
    for process in (gateway, sim):
        # Both must stop on SIGTERM, promptly and cleanly (a deployment's stop signal).
        assert (process.returncode, process.killed) == (0, False), (
            f"{process.name} exited with {process.returncode} "
            f"(killed: {process.killed}) on SIGTERM\n{process.tail()}"
        )


@pytest.fixture
def start_gateway(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start extra gateways in front of the session's simulator (stopped at teardown)."""
    started: list[ServiceProcess] = []

    def start(name: str, store: Path, **env: str) -> ServiceProcess:
        process = gateway_process(name, sim_url=stack.sim_url, store=store, log_dir=tmp_path, **env)
        started.append(process)
        _RUNNING.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
        _RUNNING.remove(process)


_numbers = itertools.count(120)


@pytest.fixture
def new_customer() -> Callable[[], str]:
    """A factory of customer numbers (+1 650 555-01xx, fictional) no other test has used."""

    def make() -> str:
        line = next(_numbers)
        if line > 199:
            raise RuntimeError("out of fictional 555-01xx numbers: widen the range")
        return f"+1650555{line:04d}"

    return make


@pytest.fixture
def customer(new_customer: Callable[[], str]) -> str:
    return new_customer()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for process in _RUNNING:
            report.sections.append((f"{process.name} output", process.tail()))
    return report
