"""Non-send carrier routes: forwarded unchanged, through an upstream that echoes what it got."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.config import Settings
from tests.support.front import FrontTestServer


async def echo(request: web.Request) -> web.StreamResponse:
    if request.path.endswith("/redirect"):
        raise web.HTTPFound("https://elsewhere.invalid/next")
    if request.path.endswith("/gzip"):
        body = gzip.compress(b'{"compressed": true}')
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )
    body = await request.read()
    reply = {
        "method": request.method,
        "path_qs": request.raw_path,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body_length": len(body),
    }
    response = web.json_response(reply, status=207)
    response.headers["X-Upstream"] = "echo"
    response.headers["Keep-Alive"] = "timeout=5"
    return response


@pytest.fixture
async def through(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    tmp_path: object,
) -> TestClient:
    upstream = web.Application(client_max_size=64 * 1024 * 1024)
    upstream.router.add_route("*", "/{tail:.*}", echo)
    server = await aiohttp_server(upstream)
    base = str(server.make_url("")).rstrip("/")
    settings = Settings(
        store=f"sqlite:///{tmp_path}/fwd.db", ringcentral_upstream=base, twilio_upstream=base
    )
    return await aiohttp_client(FrontTestServer(create_app(settings)))


async def test_request_is_forwarded_unchanged_but_for_hop_by_hop_headers(
    through: TestClient,
) -> None:
    response = await through.post(
        "/restapi/v1.0/account/~/extension/~/message-store?dateFrom=2025-01-01&x=a%20b",
        data=b"payload",
        headers={
            "Authorization": "bearer abc",
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "dropped because Connection names it",
            "TE": "trailers",
            "Proxy-Authorization": "Basic secret",
            "Content-Type": "text/plain",
        },
    )
    assert response.status == 207
    assert response.headers["X-Upstream"] == "echo"
    assert "Keep-Alive" not in response.headers
    seen = await response.json()
    assert seen["method"] == "POST"
    assert seen["path_qs"] == (
        "/restapi/v1.0/account/~/extension/~/message-store?dateFrom=2025-01-01&x=a%20b"
    )
    headers = seen["headers"]
    assert headers["authorization"] == "bearer abc"
    assert headers["x-custom"] == "kept"
    assert headers["content-type"] == "text/plain"
    for dropped in ("x-hop", "te", "proxy-authorization"):
        assert dropped not in headers
    assert seen["body_length"] == len(b"payload")


async def test_oauth_and_large_bodies_stream_through(through: TestClient) -> None:
    big = b"x" * (3 * 1024 * 1024)
    response = await through.put("/restapi/v1.0/account/~/greeting", data=io.BytesIO(big))
    assert (await response.json())["body_length"] == len(big)
    token = await through.post("/restapi/oauth/token", data={"grant_type": "password"})
    assert (await token.json())["path_qs"] == "/restapi/oauth/token"


async def test_redirects_are_relayed_not_followed(through: TestClient) -> None:
    response = await through.get("/2010-04-01/redirect", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "https://elsewhere.invalid/next"


async def test_compressed_bodies_are_relayed_as_they_came(through: TestClient) -> None:
    response = await through.get("/2010-04-01/gzip", auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(await response.read())) == {"compressed": True}


async def test_an_encoded_body_is_forwarded_as_the_content_it_carries(through: TestClient) -> None:
    """aiohttp decodes a request's Content-Encoding before the route reads the body, so the
    proxy forwards the decoded content without the encoding's header and length (forwarding
    them with it made a body whose length and header were both wrong)."""
    content = b'{"text": "' + b"x" * 5000 + b'"}'
    response = await through.post(
        "/restapi/v1.0/account/~/extension/~/message-store",
        data=gzip.compress(content),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status == 207
    seen = await response.json()
    assert seen["body_length"] == len(content)
    assert "content-encoding" not in seen["headers"]


async def test_a_body_in_a_coding_the_server_does_not_decode_goes_on_as_sent(
    through: TestClient,
) -> None:
    response = await through.post(
        "/restapi/v1.0/account/~/extension/~/message-store",
        data=b"opaque bytes",
        headers={"Content-Encoding": "x-custom", "Content-Type": "application/octet-stream"},
    )
    assert response.status == 207
    seen = await response.json()
    assert seen["body_length"] == len(b"opaque bytes")
    assert seen["headers"]["content-encoding"] == "x-custom"
    assert seen["headers"]["content-length"] == str(len(b"opaque bytes"))
