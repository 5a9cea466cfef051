"""Fixtures shared by the service suites: a real carrier simulator on a real port, and a
gateway built by ``create_app`` in front of it on a fresh SQLite store."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.carriersim.app import create_sim_app
from gateway.carriersim.state import SimCredentials
from gateway.config import Secret, Settings
from tests.support.front import FrontTestServer

ADMIN_TOKEN = "test-admin-token"
SIM = SimCredentials()
TWILIO_SEND = f"/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json"
RC_SEND = "/restapi/v1.0/account/~/extension/~/sms"
RC_BATCH = "/restapi/v1.0/account/~/a2p-sms/batches"
CONSENTS = "/restapi/v2/accounts/~/sms/consents"
BUSINESS = "+16505550100"
OTHER_BUSINESS = "+16505550199"
CUSTOMER = "+16505550111"


@pytest.fixture
async def sim_server(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await aiohttp_server(create_sim_app())


def sim_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


class Gateway:
    """A gateway test client plus helpers that speak to it the way callers do."""

    def __init__(self, client: TestClient, sim: TestServer, app: web.Application) -> None:
        self.client = client
        self.sim = sim
        self.app = app

    async def twilio_send(
        self, to: str, *, from_: str | None = BUSINESS, body: str = "hello", **extra: str
    ) -> Any:
        form = {"To": to, "Body": body, **extra}
        if from_ is not None:
            form["From"] = from_
        return await self.client.post(
            TWILIO_SEND, data=form, headers=basic(SIM.twilio_account_sid, SIM.twilio_auth_token)
        )

    async def rc_token(self) -> str:
        response = await self.client.post(
            "/restapi/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": SIM.rc_jwt,
            },
            headers=basic(SIM.rc_client_id, SIM.rc_client_secret),
        )
        assert response.status == 200, await response.text()
        return str((await response.json())["access_token"])

    async def rc_post(self, path: str, body: Any, token: str | None = None) -> Any:
        token = token or await self.rc_token()
        return await self.client.post(path, json=body, headers={"Authorization": f"bearer {token}"})

    async def set_consent(self, *records: dict[str, Any]) -> Any:
        response = await self.client.patch(
            CONSENTS,
            json={"records": list(records)},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def opt_out(self, to: str = CUSTOMER, from_: str = BUSINESS) -> None:
        await self.set_consent({"from": from_, "to": to, "optStatus": "OptOut"})

    async def delivered(self, to: str | None = None) -> list[dict[str, Any]]:
        url = self.sim.make_url("/sim/messages")
        async with self.client.session.get(url, params={"to": to} if to else None) as response:
            return list((await response.json())["messages"])

    async def sim_fault(self, **plan: Any) -> None:
        async with self.client.session.post(self.sim.make_url("/sim/faults"), json=plan) as r:
            assert r.status == 200, await r.text()


def basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic ``Authorization`` header."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def settings_for(tmp_path: Path, sim_server: TestServer) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        base = Settings(
            store=f"sqlite:///{tmp_path / 'stopgate.db'}",
            ringcentral_upstream=sim_url(sim_server),
            twilio_upstream=sim_url(sim_server),
            twilio_auth_token=Secret(SIM.twilio_auth_token),
            admin_token=Secret(ADMIN_TOKEN),
            spool_path=str(tmp_path / "spool.jsonl"),
        )
        return dataclasses.replace(base, **overrides)

    return build


@pytest.fixture
def make_gateway(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    sim_server: TestServer,
    settings_for: Callable[..., Settings],
) -> MakeGateway:
    async def make(**overrides: Any) -> Gateway:
        app = create_app(settings_for(**overrides))
        client = await aiohttp_client(FrontTestServer(app))
        return Gateway(client, sim_server, app)

    return make


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway()
