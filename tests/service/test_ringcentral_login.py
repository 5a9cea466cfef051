"""Stopgate's own RingCentral API calls on the lean client: a call that lost its connection
after the request left is asked again only when its method is idempotent (a confirmation's
POST must not reach a person twice)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.config import Secret, Settings
from gateway.errors import UpstreamConnectFailed, UpstreamUnreachable
from gateway.ringcentral_login import RingCentralLogin
from gateway.upstream import make_client_session
from gateway.upstream_lean import LeanClient


class Carrier:
    """Grants a token; drops the connection of the first API call, answers the rest."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "t", "expires_in": 3600})

    async def api(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(request.method)
        if len(self.calls) == 1:
            assert request.transport is not None
            request.transport.close()  # gone before any answer
            return web.Response()
        return web.json_response({"ok": True})


@pytest.fixture
async def carrier() -> AsyncIterator[tuple[Carrier, TestServer]]:
    carrier = Carrier()
    app = web.Application()
    app.router.add_post("/restapi/oauth/token", carrier.token)
    app.router.add_route("*", "/restapi/v1.0/thing", carrier.api)
    server = TestServer(app)
    await server.start_server()
    yield carrier, server
    await server.close()


def _settings(upstream: str) -> Settings:
    return dataclasses.replace(
        Settings(),
        ringcentral_upstream=upstream,
        ringcentral_client_id="id",
        ringcentral_client_secret=Secret("secret"),
        ringcentral_jwt=Secret("jwt"),
    )


@pytest.fixture
async def login(
    carrier: tuple[Carrier, TestServer],
) -> AsyncIterator[RingCentralLogin]:
    settings = _settings(str(carrier[1].make_url("")).rstrip("/"))
    session = make_client_session(settings)
    lean = LeanClient(settings)
    yield RingCentralLogin(settings, session, lean)
    await lean.close()
    await session.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_idempotent_call_is_asked_again_once(
    login: RingCentralLogin, carrier: tuple[Carrier, TestServer], method: str
) -> None:
    status, body = await login.call(method, "/restapi/v1.0/thing", None)
    assert (status, body) == (200, b'{"ok": true}')
    assert carrier[0].calls == [method, method]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_call_that_may_have_acted_is_not_asked_again(
    login: RingCentralLogin, carrier: tuple[Carrier, TestServer], method: str
) -> None:
    with pytest.raises(UpstreamUnreachable):
        await login.call(method, "/restapi/v1.0/thing", {"text": "You are unsubscribed"})
    assert carrier[0].calls == [method]


async def test_no_connection_at_all_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = _settings(f"http://127.0.0.1:{port}")
    async with aiohttp.ClientSession() as session:
        lean = CountedClient(LeanClient(settings))
        login = RingCentralLogin(settings, session, lean)  # type: ignore[arg-type]
        monkeypatch.setattr(login, "token", _token)
        try:
            with pytest.raises(UpstreamConnectFailed):
                await login.call("GET", "/restapi/v1.0/thing")
        finally:
            await lean.client.close()
    assert lean.attempts == ["GET"]


class CountedClient:
    """A lean client that counts its requests (the compiled class takes no attributes)."""

    def __init__(self, client: LeanClient) -> None:
        self.client = client
        self.attempts: list[str] = []

    async def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.attempts.append(method)
        return await self.client.request(method, *args, **kwargs)


async def _token() -> str:
    return "t"
