"""A running gateway for the operations tests, and the scripted traffic they observe.

``ops_stack`` (once per session): the carrier simulator in this process (a ``ServerThread`` with
credentials made up for this run, so a leaked secret cannot hide behind a published value) and
``stopgate serve`` as a real process, configured the way an operator would (environment
variables and a TOML file with a change-event subscriber), its stderr kept in a file. The
scripted mix then runs once through it: allowed sends, blocked sends (Twilio and RingCentral),
a shadow-free refusal, inbound STOP / HELP / START / plain text, a carrier 5xx and a carrier
timeout. Tests read its outcome: the log file, ``/metrics``, the counts it made.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.carriersim.app import create_sim_app
from gateway.carriersim.state import SimCredentials
from tests.support.processes import ServiceProcess
from tests.support.servers import ServerThread

REPO = Path(__file__).resolve().parents[2]
BUSINESS = "+16505550100"
CONSENTS = "/restapi/v2/accounts/~/sms/consents"
TIMEOUT = 10.0


def stopgate_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "stopgate"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *args]
    return [sys.executable, "-m", "gateway.cli", *args]


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOPGATE_", "TWILIO_"))}
    env.update(extra)
    return env


@dataclasses.dataclass
class Mix:
    """What the scripted traffic did (what the logs and metrics must show)."""

    allowed: int = 0
    blocked: int = 0
    upstream_errors: int = 0
    keywords: dict[str, int] = dataclasses.field(default_factory=dict)
    request_ids: dict[str, str] = dataclasses.field(default_factory=dict)
    """decision kind -> the X-Request-Id of one such send"""
    customers: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    unlogged_when_answered: list[str] = dataclasses.field(default_factory=list)
    """Request ids of sends whose decision line was not in the log yet when their answer came
    (must stay empty: the line is written before the answer leaves)."""


@dataclasses.dataclass
class OpsStack:
    sim: ServerThread
    gateway: ServiceProcess
    credentials: SimCredentials
    secrets: dict[str, str]
    """Every configured secret value, by setting name, plus credentials the callers sent."""
    mix: Mix
    http: requests.Session

    @property
    def url(self) -> str:
        return self.gateway.url

    def log_text(self) -> str:
        return self.gateway.stderr_path.read_text(
            encoding="utf-8"
        ) + self.gateway.stdout_path.read_text(encoding="utf-8")

    def metrics_text(self) -> str:
        reply = self.http.get(f"{self.url}/metrics", timeout=TIMEOUT)
        assert reply.status_code == 200
        return reply.text


_numbers = itertools.count(300)


def new_customer() -> str:
    return f"+1650555{next(_numbers):04d}"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run_mix(stack: OpsStack) -> Mix:
    """The scripted traffic. Every send's answer is checked, so a mix that silently did less
    than it says cannot pass."""
    http, url, cred, mix = stack.http, stack.url, stack.credentials, stack.mix
    twilio_send = f"{url}/2010-04-01/Accounts/{cred.twilio_account_sid}/Messages.json"
    twilio_auth = {"Authorization": _basic(cred.twilio_account_sid, cred.twilio_auth_token)}
    admin = {"Authorization": f"Bearer {stack.secrets['admin_token']}"}

    def logged(reply: requests.Response) -> requests.Response:
        request_id = reply.headers.get("X-Request-Id", "")
        if f'"request_id":"{request_id}"' not in stack.log_text():
            mix.unlogged_when_answered.append(request_id)
        return reply

    def twilio(to: str, body: str = "Your order shipped") -> requests.Response:
        return logged(
            http.post(
                twilio_send,
                data={"To": to, "From": BUSINESS, "Body": body},
                headers=twilio_auth,
                timeout=TIMEOUT,
            )
        )

    def remember(kind: str, reply: requests.Response) -> None:
        mix.request_ids.setdefault(kind, reply.headers["X-Request-Id"])

    # Allowed sends (one with a footer-adding text), Twilio.
    for _ in range(3):
        customer = new_customer()
        mix.customers.append(customer)
        reply = twilio(customer)
        assert reply.status_code == 201, reply.text
        assert reply.headers["X-Stopgate-Decision"] == "allowed"
        remember("allowed", reply)
        mix.allowed += 1

    # Opt-outs through the consents API, then blocked sends.
    blocked_customer = new_customer()
    mix.customers.append(blocked_customer)
    reply = http.patch(
        f"{url}{CONSENTS}",
        json={"records": [{"from": BUSINESS, "to": blocked_customer, "optStatus": "OptOut"}]},
        headers=admin,
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200, reply.text
    for _ in range(2):
        reply = twilio(blocked_customer, "Sale today")
        assert reply.status_code == 400 and reply.json()["code"] == 21610, reply.text
        remember("blocked", reply)
        mix.blocked += 1

    # RingCentral: a token through the gateway (OAuth forwarded), an allowed and a blocked send.
    token_reply = http.post(
        f"{url}/restapi/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": cred.rc_jwt,
        },
        headers={"Authorization": _basic(cred.rc_client_id, cred.rc_client_secret)},
        timeout=TIMEOUT,
    )
    assert token_reply.status_code == 200, token_reply.text
    access = token_reply.json()["access_token"]
    stack.secrets["caller_rc_access_token"] = access
    rc_auth = {"Authorization": f"bearer {access}"}
    rc_send = f"{url}/restapi/v1.0/account/~/extension/~/sms"
    customer = new_customer()
    reply = logged(
        http.post(
            rc_send,
            json={
                "from": {"phoneNumber": BUSINESS},
                "to": [{"phoneNumber": customer}],
                "text": "hi",
            },
            headers=rc_auth,
            timeout=TIMEOUT,
        )
    )
    assert reply.status_code == 200, reply.text
    mix.allowed += 1
    reply = http.post(
        rc_send,
        json={
            "from": {"phoneNumber": BUSINESS},
            "to": [{"phoneNumber": blocked_customer}],
            "text": "hi again",
        },
        headers=rc_auth,
        timeout=TIMEOUT,
    )
    assert reply.status_code == 400 and "SMS-RC-413" in reply.text, reply.text
    mix.blocked += 1

    # Inbound keywords, delivered by the simulator as real signed Twilio webhooks.
    keyword_customer = new_customer()
    mix.customers.append(keyword_customer)
    for text, klass in (
        ("STOP", "opt_out"),
        ("HELP", "help"),
        ("START", "opt_in"),
        ("thanks", "none"),
    ):
        reply = http.post(
            f"{stack.sim.url}/sim/inbound",
            json={
                "provider": "twilio",
                "from": keyword_customer,
                "to": BUSINESS,
                "text": text,
                "gateway": url,
            },
            timeout=TIMEOUT,
        )
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["status"] == 200, answer
        mix.keywords[klass] = mix.keywords.get(klass, 0) + 1

    # The carrier fails: a 5xx answer (relayed), then a timeout (504, refused).
    http.post(f"{stack.sim.url}/sim/faults", json={"mode": "5xx", "count": 1}, timeout=TIMEOUT)
    reply = twilio(new_customer())
    assert reply.status_code == 503, reply.text
    remember("upstream-5xx", reply)
    mix.allowed += 1  # decided allowed, then the carrier failed
    mix.upstream_errors += 1
    http.post(
        f"{stack.sim.url}/sim/faults",
        json={"mode": "timeout", "count": 1, "delay_seconds": 5},
        timeout=TIMEOUT,
    )
    reply = twilio(new_customer())
    assert reply.status_code == 504, reply.text
    remember("upstream-timeout", reply)
    mix.allowed += 1
    mix.upstream_errors += 1
    return mix


@pytest.fixture(scope="session")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    work = tmp_path_factory.mktemp("ops-stack")
    credentials = SimCredentials(
        twilio_auth_token=secrets.token_hex(16),
        rc_client_secret=f"rc-secret-{secrets.token_hex(12)}",
        rc_jwt=f"rc-jwt-{secrets.token_hex(24)}",
    )
    configured = {
        "twilio_auth_token": credentials.twilio_auth_token,
        "admin_token": f"admin-{secrets.token_hex(12)}",
        "ringcentral_client_secret": credentials.rc_client_secret,
        "ringcentral_jwt": credentials.rc_jwt,
        "ringcentral_verification_token": f"verify-{secrets.token_hex(12)}",
        "subscriber_secret": f"subscriber-{secrets.token_hex(12)}",
    }
    config = work / "stopgate.toml"
    # The subscriber listens nowhere (port 9 on loopback refuses): its change events retry,
    # which must log as warnings without their signing secret.
    config.write_text(
        "[[subscribers]]\n"
        'name = "crm"\n'
        'url = "http://127.0.0.1:9/events"\n'
        f'secret = "{configured["subscriber_secret"]}"\n',
        encoding="utf-8",
    )
    sim = ServerThread(lambda: create_sim_app(credentials=credentials))
    with sim:
        env = clean_environment(
            STOPGATE_CONFIG=str(config),
            STOPGATE_STORE=f"sqlite:///{work / 'stopgate.db'}",
            STOPGATE_SPOOL_PATH=str(work / "spool.jsonl"),
            STOPGATE_RINGCENTRAL_UPSTREAM=sim.url,
            STOPGATE_TWILIO_UPSTREAM=sim.url,
            STOPGATE_TWILIO_AUTH_TOKEN=configured["twilio_auth_token"],
            STOPGATE_ADMIN_TOKEN=configured["admin_token"],
            STOPGATE_RINGCENTRAL_CLIENT_ID=credentials.rc_client_id,
            STOPGATE_RINGCENTRAL_CLIENT_SECRET=configured["ringcentral_client_secret"],
            STOPGATE_RINGCENTRAL_JWT=configured["ringcentral_jwt"],
            STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN=configured["ringcentral_verification_token"],
            STOPGATE_FOOTER="always",
            STOPGATE_UPSTREAM_TIMEOUT="1",
            STOPGATE_LOG_LEVEL="INFO",
        )
        gateway = ServiceProcess(
            "ops-gateway",
            stopgate_command("serve", "--listen", "{listen}"),
            health_path="/healthz",
            log_dir=work,
            env=env,
            cwd=REPO,
        )
        with gateway, requests.Session() as http:
            stack = OpsStack(sim, gateway, credentials, dict(configured), Mix(), http)
            started = time.monotonic()
            run_mix(stack)
            stack.mix.seconds = time.monotonic() - started
            yield stack
        assert gateway.returncode == 0, gateway.tail()


def scrape(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a Prometheus text exposition, by sample name (parsed by prometheus_client)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())
    )
