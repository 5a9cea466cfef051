"""``stopgate demo``: the gateway in front of the bundled carrier simulator, on SQLite.

Both run in this one process on loopback: the simulator on 127.0.0.1:8090 and the gateway on
127.0.0.1:8080 (``STOPGATE_LISTEN`` / ``--listen`` move it), its upstreams pointed at the
simulator, its store ``sqlite:///./stopgate.db`` unless ``STOPGATE_STORE`` says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os

from aiohttp import web

from gateway import native
from gateway.app import create_app
from gateway.carriersim.app import create_sim_app
from gateway.carriersim.state import SimCredentials
from gateway.config import Secret, Settings, load_settings
from gateway.server import FrontRunner

DEMO_ADMIN_TOKEN = "demo-admin-token"  # noqa: S105 (published demo value, loopback only)
SIM_LISTEN = ("127.0.0.1", 8090)


def demo_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    sim = SimCredentials()
    upstream = f"http://{SIM_LISTEN[0]}:{SIM_LISTEN[1]}"
    env.setdefault("STOPGATE_RINGCENTRAL_UPSTREAM", upstream)
    env.setdefault("STOPGATE_TWILIO_UPSTREAM", upstream)
    env.setdefault("STOPGATE_TWILIO_AUTH_TOKEN", sim.twilio_auth_token)
    env.setdefault("STOPGATE_ADMIN_TOKEN", DEMO_ADMIN_TOKEN)
    settings = load_settings(environ=env)
    if settings.admin_token is None:
        settings = dataclasses.replace(settings, admin_token=Secret(DEMO_ADMIN_TOKEN))
    return settings


def _tour(settings: Settings) -> str:
    host, port = settings.listen_host_port
    gw = f"http://{host}:{port}"
    sim = SimCredentials()
    account = sim.twilio_account_sid
    basic = f"{account}:{sim.twilio_auth_token}"
    return f"""
Stopgate demo: gateway {gw} -> carrier simulator http://{SIM_LISTEN[0]}:{SIM_LISTEN[1]}
store {settings.store}; admin token {DEMO_ADMIN_TOKEN!r}; send path {native.STATE.describe()}.
Try, in another shell:

  # 1. a send goes through (Twilio dialect)
  curl -s -u {basic} {gw}/2010-04-01/Accounts/{account}/Messages.json \\
       --data-urlencode To='(650) 555-0111' --data-urlencode From=+16505550100 \\
       -d Body='Your order shipped'
  # 2. the customer opts out, through the consents API
  curl -s -X PATCH -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}' \\
       -H 'Content-Type: application/json' {gw}/restapi/v2/accounts/~/sms/consents \\
       -d '{{"records": [{{"from": "+16505550100", "to": "+16505550111", "optStatus": "OptOut"}}]}}'
  # 3. the next send, however the number is written, is refused with Twilio's 21610
  curl -s -i -u {basic} {gw}/2010-04-01/Accounts/{account}/Messages.json \\
       --data-urlencode To='tel:+1-650-555-0111' --data-urlencode From=+16505550100 \\
       -d Body='Sale today'
  # what the carrier received
  curl -s http://{SIM_LISTEN[0]}:{SIM_LISTEN[1]}/sim/messages

Ctrl-C stops both.
"""


async def _run(settings: Settings) -> None:
    sim_runner = web.AppRunner(create_sim_app())
    await sim_runner.setup()
    await web.TCPSite(sim_runner, *SIM_LISTEN).start()
    # Served like `stopgate serve`: sends through the lean front, the rest by aiohttp.
    gateway_runner = FrontRunner(create_app(settings), access_log=None)
    await gateway_runner.setup()
    host, port = settings.listen_host_port
    await web.TCPSite(gateway_runner, host, port).start()
    print(_tour(settings), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await gateway_runner.cleanup()
        await sim_runner.cleanup()


def run_demo() -> int:
    settings = demo_settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(settings))
    return 0
