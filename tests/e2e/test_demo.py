"""``make run``'s command, ``stopgate demo``: the gateway and the bundled carrier simulator in one
process (the simulator on its documented port, 8090), and the tour its banner prints works as
printed: a send goes through, the customer opts out, the same number written another way is
refused with Twilio's 21610, and the carrier received only the first message."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import requests

from gateway.demo import DEMO_ADMIN_TOKEN, SIM_LISTEN
from tests.e2e.conftest import HTTP_TIMEOUT, SIM, stopgate_command
from tests.support.processes import ServiceProcess

SIM_URL = f"http://{SIM_LISTEN[0]}:{SIM_LISTEN[1]}"
SENDER = "+16505550100"
BANNER_END = "Ctrl-C stops both."


def wait_for_banner(demo: ServiceProcess, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = demo.stdout_path.read_text(errors="replace")
        if BANNER_END in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no banner on stdout after {timeout} s:\n{demo.tail()}")


def test_the_demo_runs_the_tour_its_banner_prints(tmp_path: Path) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(SIM_LISTEN)
        except OSError as exc:
            pytest.fail(f"the demo's simulator port {SIM_URL} is taken ({exc}): free it and rerun")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOPGATE_")}
    env["STOPGATE_LISTEN"] = "{listen}"
    demo = ServiceProcess(
        "demo",
        stopgate_command("demo"),
        health_path="/readyz",
        log_dir=tmp_path,
        env=env,
        cwd=tmp_path,  # the demo's store is ./stopgate.db
    )
    with demo:
        banner = wait_for_banner(demo)
        assert f"gateway {demo.url} -> carrier simulator {SIM_URL}" in banner
        assert "send path compiled" in banner or "send path pure Python" in banner
        messages = f"{demo.url}/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json"

        def send(to: str, body: str) -> requests.Response:
            return requests.post(
                messages,
                data={"To": to, "From": SENDER, "Body": body},
                auth=(SIM.twilio_account_sid, SIM.twilio_auth_token),
                timeout=HTTP_TIMEOUT,
            )

        sent = send("(650) 555-0111", "Your order shipped")
        assert sent.status_code == 201, sent.text

        opted_out = requests.patch(
            f"{demo.url}/restapi/v2/accounts/~/sms/consents",
            headers={"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"},
            json={"records": [{"from": SENDER, "to": "+16505550111", "optStatus": "OptOut"}]},
            timeout=HTTP_TIMEOUT,
        )
        assert opted_out.status_code == 200, opted_out.text

        refused = send("tel:+1-650-555-0111", "Sale today")
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == 21610
        assert refused.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out"

        received = requests.get(f"{SIM_URL}/sim/messages", timeout=HTTP_TIMEOUT)
        assert received.status_code == 200, received.text
        assert [m["text"] for m in received.json()["messages"]] == ["Your order shipped"]
