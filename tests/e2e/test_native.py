"""The gateway as built (the send path compiled) and the same gateway from source
(``STOPGATE_PURE_PYTHON=1``) refuse and forward alike; each says which it runs at start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests

from tests.e2e.conftest import HTTP_TIMEOUT, SIM, Stack
from tests.support.processes import ServiceProcess

SENDER = "+16505550100"


def twilio_send(gateway: ServiceProcess, to: str) -> requests.Response:
    return requests.post(
        f"{gateway.url}/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json",
        data={"To": to, "From": SENDER, "Body": "hi"},
        auth=(SIM.twilio_account_sid, SIM.twilio_auth_token),
        timeout=HTTP_TIMEOUT,
    )


def test_the_pure_python_gateway_refuses_and_forwards_like_the_compiled_one(
    stack: Stack,
    start_gateway: Callable[..., ServiceProcess],
    new_customer: Callable[[], str],
    tmp_path: Path,
) -> None:
    pure = start_gateway("pure", tmp_path / "pure.db", STOPGATE_PURE_PYTHON="1")
    opted_out, allowed = new_customer(), new_customer()
    stack.opt_out(opted_out)
    for gateway, says in ((stack.gateway, "send path: compiled"), (pure, "send path: pure")):
        if gateway is pure:
            # Its own store: the opt-out goes in through its API too.
            reply = requests.patch(
                f"{pure.url}/restapi/v2/accounts/~/sms/consents",
                json={"records": [{"from": SENDER, "to": opted_out, "optStatus": "OptOut"}]},
                headers={"Authorization": "Bearer e2e-admin-token"},
                timeout=HTTP_TIMEOUT,
            )
            assert reply.status_code == 200, reply.text
        started = gateway.stderr_path.read_text(encoding="utf-8")
        assert says in started, gateway.tail()
        refused = twilio_send(gateway, opted_out)
        assert (refused.status_code, refused.json()["code"]) == (400, 21610)
        assert refused.headers["X-Stopgate-Decision"].startswith("blocked")
        sent = twilio_send(gateway, allowed)
        assert sent.status_code == 201, sent.text
    assert len(stack.delivered(allowed)) == 2
    assert stack.delivered(opted_out) == []


def test_the_front_client_and_send_path_tests_pass_from_source(tmp_path: Path) -> None:
    """The suite runs the compiled build; the same code from source (``STOPGATE_PURE_PYTHON=1``:
    a machine without a C compiler, a profile with py-spy) runs the tests of the modules most
    changed to be compiled: the front, the lean client and the send path."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    tests = [
        "tests/service/test_front.py",
        "tests/service/test_upstream_lean.py",
        "tests/service/test_send_path.py",
        "tests/unit/test_batch_reply_merge.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
        cwd=repo,
        env={**os.environ, "STOPGATE_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
