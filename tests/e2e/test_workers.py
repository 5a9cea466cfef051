"""``stopgate serve --workers 2``: two processes on one port, one consent state, no orphans."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import BUSINESS, SIM, TWILIO_SEND
from tests.e2e.conftest import ADMIN_TOKEN, Stack, gateway_process, reported

pytestmark = pytest.mark.e2e

AUTH = (SIM.twilio_account_sid, SIM.twilio_auth_token)


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_two_workers_share_the_port_and_the_consent_state(stack: Stack, tmp_path: Path) -> None:
    process = gateway_process(
        "workers",
        sim_url=stack.sim_url,
        store=tmp_path / "w.db",
        log_dir=tmp_path,
        STOPGATE_WORKERS="2",
        STOPGATE_SPOOL_PATH=str(tmp_path / "spool.jsonl"),
    )
    with process, reported(process):
        assert process.pid is not None
        deadline = time.monotonic() + 10
        while len(children_of(process.pid)) < 2:
            assert time.monotonic() < deadline, "two workers did not start"
            time.sleep(0.1)
        url = process.url
        customers = [f"+1650779{n:04d}" for n in range(40)]
        for customer in customers:  # spread over both workers: each caches "allowed"
            reply = requests.post(
                url + TWILIO_SEND,
                data={"To": customer, "From": BUSINESS, "Body": "x"},
                auth=AUTH,
                timeout=10,
            )
            assert reply.status_code == 201, reply.text
        reply = requests.patch(
            url + "/restapi/v2/accounts/~/sms/consents",
            json={
                "records": [{"from": BUSINESS, "to": c, "optStatus": "OptOut"} for c in customers]
            },
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        time.sleep(0.1)
        for customer in customers:  # new connections land on either worker
            reply = requests.post(
                url + TWILIO_SEND,
                data={"To": customer, "From": BUSINESS, "Body": "x"},
                auth=AUTH,
                timeout=10,
                headers={"Connection": "close"},
            )
            assert reply.status_code == 400, (customer, reply.text)


def test_workers_die_with_their_parent(stack: Stack, tmp_path: Path) -> None:
    process = gateway_process(
        "orphans",
        sim_url=stack.sim_url,
        store=tmp_path / "o.db",
        log_dir=tmp_path,
        STOPGATE_WORKERS="2",
    )
    with process, reported(process):
        assert process.pid is not None
        deadline = time.monotonic() + 10
        while len(children := children_of(process.pid)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(child) for child in children):
            assert time.monotonic() < deadline, "workers outlived their parent"
            time.sleep(0.1)
