"""Nothing secret leaks from a real ``stopgate serve`` under hostile traffic.

Every secret is configured (primary and secondary carrier secrets, the admin token, a hashed
auditor token, Stopgate's RingCentral login, a subscriber's signing secret), each a fresh random
value. Then the gateway gets wrong credentials, forged and replayed webhooks, sign-in guessing up
to the rate limit, path tricks, smuggling attempts, malformed headers carrying a secret, and some
ordinary traffic, including a real RingCentral inbound STOP (delivered by the simulator) whose
confirmation the outbox sends with Stopgate's own RingCentral login (client secret + JWT); the
test waits until the simulator has that confirmation. Every configured secret, and the access
and refresh tokens the simulator issued to that login, is then looked for in the process's
whole output (stdout and stderr), in ``/metrics`` and in every answer the gateway gave - except
the answers to requests that themselves carried that secret (the HTTP parser's 400 names the
line it refused, to the caller who sent it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from twilio.request_validator import RequestValidator

from gateway.carriersim.app import create_sim_app
from gateway.carriersim.state import SIM_STATE, SimCredentials
from tests.ops.conftest import REPO, clean_environment, stopgate_command
from tests.support.processes import ServiceProcess
from tests.support.rawhttp import exchange
from tests.support.servers import ServerThread

pytestmark = pytest.mark.e2e

BUSINESS, CUSTOMER = "+16505550100", "+16505550111"
RC_CUSTOMER = "+16505550112"
CONSENTS = "/restapi/v2/accounts/~/sms/consents"
CONFIRMATION_WAIT = 60.0
"""Generous: the outbox normally sends within a second, but the machine may be loaded."""


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _wait_for_confirmation(http: requests.Session, sim_url: str, to: str) -> dict[str, Any]:
    """The first message the carrier delivered to ``to``, waiting a bounded time for it."""
    deadline = time.monotonic() + CONFIRMATION_WAIT
    while True:
        reply = http.get(f"{sim_url}/sim/messages", params={"to": to}, timeout=30)
        assert reply.status_code == 200, reply.text
        messages: list[dict[str, Any]] = reply.json()["messages"]
        if messages:
            return messages[0]
        assert time.monotonic() < deadline, f"no confirmation to {to} within {CONFIRMATION_WAIT}s"
        time.sleep(0.1)


def test_no_configured_secret_appears_in_output_metrics_or_answers(tmp_path: Path) -> None:
    creds = SimCredentials(
        twilio_auth_token=secrets.token_hex(16),
        rc_client_secret=f"rc-secret-{secrets.token_hex(12)}",
        rc_jwt=f"rc-jwt-{secrets.token_hex(24)}",
        rc_verification_token=f"verify-{secrets.token_hex(12)}",
    )
    configured = {
        "twilio_auth_token": creds.twilio_auth_token,
        "twilio_auth_token_secondary": secrets.token_hex(16),
        "ringcentral_verification_token": creds.rc_verification_token,
        "ringcentral_verification_token_secondary": f"verify2-{secrets.token_hex(12)}",
        "admin_token": f"admin-{secrets.token_hex(12)}",
        "auditor_token": f"auditor-{secrets.token_hex(12)}",
        "ringcentral_client_secret": creds.rc_client_secret,
        "ringcentral_jwt": creds.rc_jwt,
        "subscriber_secret": f"subscriber-{secrets.token_hex(12)}",
    }
    auditor_digest = hashlib.sha256(configured["auditor_token"].encode()).hexdigest()
    config = tmp_path / "stopgate.toml"
    config.write_text(
        "[[tokens]]\n"
        'name = "audit"\n'
        f'sha256 = "{auditor_digest}"\n'
        'role = "auditor"\n'
        "[[subscribers]]\n"
        'name = "crm"\n'
        'url = "http://127.0.0.1:9/events"\n'
        f'secret = "{configured["subscriber_secret"]}"\n',
        encoding="utf-8",
    )
    answers: list[tuple[set[str], bytes]] = []
    """(the secrets the request carried, the whole answer as received)"""

    with ServerThread(lambda: create_sim_app(credentials=creds)) as sim:
        sim_state = sim.app[SIM_STATE]
        env = clean_environment(
            STOPGATE_CONFIG=str(config),
            STOPGATE_STORE=f"sqlite:///{tmp_path / 'stopgate.db'}",
            STOPGATE_SPOOL_PATH=str(tmp_path / "spool.jsonl"),
            STOPGATE_RINGCENTRAL_UPSTREAM=sim.url,
            STOPGATE_TWILIO_UPSTREAM=sim.url,
            STOPGATE_TWILIO_AUTH_TOKEN=configured["twilio_auth_token"],
            STOPGATE_TWILIO_AUTH_TOKEN_SECONDARY=configured["twilio_auth_token_secondary"],
            STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN=configured["ringcentral_verification_token"],
            STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN_SECONDARY=configured[
                "ringcentral_verification_token_secondary"
            ],
            STOPGATE_ADMIN_TOKEN=configured["admin_token"],
            STOPGATE_RINGCENTRAL_CLIENT_ID=creds.rc_client_id,
            STOPGATE_RINGCENTRAL_CLIENT_SECRET=configured["ringcentral_client_secret"],
            STOPGATE_RINGCENTRAL_JWT=configured["ringcentral_jwt"],
            STOPGATE_RINGCENTRAL_ACCOUNT_ID=creds.rc_account_id,
            STOPGATE_LOG_LEVEL="DEBUG",
        )
        gateway = ServiceProcess(
            "secrets-gateway",
            stopgate_command("serve", "--listen", "{listen}"),
            health_path="/healthz",
            log_dir=tmp_path,
            env=env,
            cwd=REPO,
            start_timeout=60,
        )
        with gateway, requests.Session() as http:
            url = gateway.url

            def call(method: str, path: str, carried: set[str] = frozenset(), **kw: object) -> int:  # type: ignore[assignment]
                reply = http.request(method, url + path, timeout=30, **kw)  # type: ignore[arg-type]
                head = "".join(f"{k}: {v}\n" for k, v in reply.headers.items())
                answers.append((set(carried), head.encode() + reply.content))
                return reply.status_code

            admin = configured["admin_token"]
            twilio_send = f"/2010-04-01/Accounts/{creds.twilio_account_sid}/Messages.json"
            form = {"To": CUSTOMER, "From": BUSINESS, "Body": "hello"}
            # Sends: right, secondary (local check passes; the carrier answers), wrong.
            for token in (
                creds.twilio_auth_token,
                configured["twilio_auth_token_secondary"],
                "wrong-token",
            ):
                carried = {k for k, v in configured.items() if v == token}
                call(
                    "POST",
                    twilio_send,
                    carried,
                    data=form,
                    headers={"Authorization": _basic(creds.twilio_account_sid, token)},
                )
            call("POST", "/restapi/v1.0/account/~/extension/~/sms", json={"text": "x"})
            # Consents API and console: right, wrong, under-privileged; sign-in guessing.
            record = {"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}]}
            assert call(
                "PATCH", CONSENTS, {"admin_token"}, json=record,
                headers={"Authorization": f"Bearer {admin}"},
            ) == 200  # fmt: skip
            auditor = {"Authorization": f"Bearer {configured['auditor_token']}"}
            assert call("PATCH", CONSENTS, {"auditor_token"}, json=record, headers=auditor) == 403
            assert call("GET", CONSENTS, headers={"Authorization": "Bearer nope"}) == 401
            statuses = [
                call("POST", "/admin/session", json={"token": f"guess-{i}"}) for i in range(12)
            ]
            assert statuses[-1] == 429
            assert call("POST", "/admin/session", {"admin_token"}, json={"token": admin}) == 429
            # Webhooks: forged, valid (secondary), replayed.
            hook = f"{url}/webhooks/twilio"
            stop = {"MessageSid": "SM" + uuid.uuid4().hex, "From": CUSTOMER, "To": BUSINESS}
            stop["Body"] = "STOP"
            for token in ("forged-token", configured["twilio_auth_token_secondary"]) * 2:
                signature = RequestValidator(token).compute_signature(hook, stop)
                call(
                    "POST",
                    "/webhooks/twilio",
                    data=urlencode(stop),
                    headers={
                        "X-Twilio-Signature": signature,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
            for token in ("forged", configured["ringcentral_verification_token_secondary"]):
                carried = {k for k, v in configured.items() if v == token}
                call(
                    "POST",
                    "/webhooks/ringcentral",
                    carried,
                    json={"uuid": "u1", "body": {}},
                    headers={"Verification-Token": token},
                )
            # A real inbound STOP from RingCentral: Stopgate confirms it through its outbox,
            # logged in to RingCentral with its own client secret and JWT.
            inbound = http.post(
                f"{sim.url}/sim/inbound",
                json={
                    "provider": "ringcentral",
                    "from": RC_CUSTOMER,
                    "to": BUSINESS,
                    "text": "STOP",
                    "gateway": url,
                },
                timeout=60,
            )
            assert inbound.status_code == 200, inbound.text
            assert inbound.json()["status"] == 200, inbound.text
            answers.append(({"ringcentral_verification_token"}, inbound.content))
            confirmation = _wait_for_confirmation(http, sim.url, RC_CUSTOMER)
            assert (confirmation["provider"], confirmation["api"]) == ("ringcentral", "sms")
            assert confirmation["from"] == BUSINESS
            call("GET", "/restapi/../admin/blocked")
            call("GET", "/admin%2Fblocked")

            # Raw: malformed requests that carry secrets, smuggling, absolute URIs.
            async def raw() -> None:
                host, port = gateway.host, gateway.port
                cases = [
                    ({"admin_token"}, f"GET /admin/blocked HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {admin}\x00\r\n\r\n"),
                    ({"admin_token"}, f"GET /admin/blocked HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {admin}\r\nX-Bad: a\rb\r\n\r\n"),
                    (set(), "POST /restapi/v1.0/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                    (set(), "GET http://evil.example/admin/blocked HTTP/1.1\r\nHost: x\r\n\r\n"),
                    (set(), "GET /" + "a" * 20000 + " HTTP/1.1\r\nHost: x\r\n\r\n"),
                ]  # fmt: skip
                for carried, request in cases:
                    answer = await exchange(host, port, request.encode(), wait=10)
                    answers.append((carried, answer.raw))

            asyncio.run(raw())
            metrics = http.get(f"{url}/metrics", timeout=30)
            assert metrics.status_code == 200
            answers.append((set(), metrics.content))
        assert gateway.returncode == 0, gateway.tail()
        output = gateway.stderr_path.read_bytes() + gateway.stdout_path.read_bytes()
        # What the carrier issued to Stopgate's login is as secret as what it logged in with.
        sessions = list(sim_state.rc_by_access.values())
    assert sessions, "Stopgate never logged in to RingCentral"
    for number, session in enumerate(sessions):
        configured[f"issued_access_token_{number}"] = session.access_token
        configured[f"issued_refresh_token_{number}"] = session.refresh_token

    assert len(output) > 1000  # the DEBUG run did log
    assert len(answers) > 30
    for name, secret in configured.items():
        assert secret.encode() not in output, f"{name} appears in the gateway's output"
        for carried, answer in answers:
            if name not in carried:
                assert secret.encode() not in answer, f"{name} appears in an answer"
    assert b"authorization: bearer" not in output.lower()
