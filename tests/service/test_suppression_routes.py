"""``/admin/suppressions``: import or refresh a suppression list over HTTP (streamed CSV body,
canonicalised off the event loop), list the lists, drop one; admin writes, auditor reads."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import TokenSpec
from gateway.keys import STORE
from tests.conftest import ADMIN_TOKEN, CUSTOMER, Gateway, MakeGateway

AUDITOR_TOKEN = "test-auditor-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AUDITOR = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
CSV = {"Content-Type": "text/csv"}
OTHER = "+16505550112"


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    auditor = TokenSpec("auditor", hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest(), "auditor")
    return await make_gateway(tokens=(auditor,))


async def put(gateway: Gateway, name: str, body: Any, headers: Any = None, **query: str) -> Any:
    return await gateway.client.put(
        f"/admin/suppressions/{name}",
        data=body,
        params=query,
        headers=headers if headers is not None else {**ADMIN, **CSV},
    )


async def test_an_imported_list_refuses_sends_until_refreshed_and_dropped(
    gateway: Gateway,
) -> None:
    assert (await gateway.twilio_send(CUSTOMER)).status == 201  # cached as allowed
    body = "Number,Name\n(650) 555-0111,Ann\nnot a number,Bob\n\n+1 650 555 0112,Cy\n"
    response = await put(gateway, "Internal", body, reason="asked by phone")
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["list"]["name"] == "internal" and answer["list"]["kind"] == "internal"
    assert answer["list"]["members"] == 2 and answer["list"]["reason"] == "asked by phone"
    assert (answer["added"], answer["released"]) == (2, 0)
    assert (answer["rows"], answer["rejected"]) == (3, 1)
    assert answer["rejections"][0]["line"] == 3
    refused = await gateway.twilio_send(CUSTOMER)
    assert refused.headers["X-Stopgate-Decision"] == "blocked; reason=suppressed"
    # A refresh replaces the members: CUSTOMER is released, OTHER stays.
    refresh = await put(gateway, "internal", "+16505550112\n")
    assert ((await refresh.json())["added"], (await refresh.json())["released"]) == (0, 1)
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    assert (await gateway.twilio_send(OTHER)).status == 400
    listed = await gateway.client.get("/admin/suppressions", headers=AUDITOR)
    assert listed.status == 200
    [entry] = (await listed.json())["records"]
    assert (entry["name"], entry["members"]) == ("internal", 1)
    dropped = await gateway.client.delete("/admin/suppressions/internal", headers=ADMIN)
    assert (dropped.status, await dropped.json()) == (200, {"name": "internal", "released": 1})
    assert (await gateway.twilio_send(OTHER)).status == 201
    listed = await gateway.client.get("/admin/suppressions", headers=ADMIN)
    assert (await listed.json())["records"] == []


async def test_kind_and_date_are_kept(gateway: Gateway) -> None:
    response = await put(gateway, "dnc-2026", "+16505550111\n", kind="dnc", asOf="2026-01-31")
    assert response.status == 200
    listed = (await response.json())["list"]
    assert listed["kind"] == "dnc" and listed["asOf"].startswith("2026-01-31T00:00:00")
    [stored] = await gateway.app[STORE].suppression_lists()
    assert stored.kind.value == "dnc"


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("PUT", {}, 401),
        ("PUT", AUDITOR, 403),
        ("PUT", {"Authorization": "Bearer wrong"}, 401),
        ("DELETE", {}, 401),
        ("DELETE", AUDITOR, 403),
        ("GET", {}, 401),
    ],
)
async def test_writes_need_the_admin_role(
    gateway: Gateway, method: str, headers: dict[str, str], status: int
) -> None:
    path = "/admin/suppressions" + ("" if method == "GET" else "/internal")
    response = await gateway.client.request(
        method, path, data="+16505550111\n", headers={**headers, **CSV}
    )
    assert response.status == status
    assert (await response.json())["error"]["reason"] in ("unauthorized", "forbidden")
    assert await gateway.app[STORE].suppression_lists() == []


@pytest.mark.parametrize(
    ("name", "query", "headers", "status", "reason"),
    [
        ("no/such", {}, None, 404, None),
        ("-bad", {}, None, 400, "bad-list-name"),
        ("x" * 33, {}, None, 400, "bad-list-name"),
        ("ok", {"kind": "national"}, None, 400, "invalid-kind"),
        ("ok", {"asOf": "yesterday"}, None, 400, "invalid-time"),
        ("ok", {"reason": "r" * 501}, None, 400, "invalid-reason"),
        ("ok", {}, {**ADMIN, "Content-Type": "application/json"}, 415, "unsupported-content-type"),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    gateway: Gateway,
    name: str,
    query: dict[str, str],
    headers: dict[str, str] | None,
    status: int,
    reason: str | None,
) -> None:
    response = await put(gateway, name, "+16505550111\n", headers, **query)
    assert response.status == status
    if reason is not None:
        assert (await response.json())["error"]["reason"] == reason
    assert await gateway.app[STORE].suppression_lists() == []


async def test_a_body_that_is_not_utf8_publishes_nothing(gateway: Gateway) -> None:
    assert (await put(gateway, "internal", "+16505550111\n")).status == 200
    response = await put(gateway, "internal", b"+16505550112\n\xff\xfe\n")
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == "malformed-body"
    [kept] = await gateway.app[STORE].suppression_lists()
    assert kept.members == 1
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


async def test_the_body_is_streamed_and_sends_go_on_meanwhile(gateway: Gateway) -> None:
    """A large list arrives in chunks; while the import is open (body not finished) the
    gateway keeps answering sends, and the event loop is never held for long."""
    rows = 20_000
    half = asyncio.Event()
    go_on = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, rows, 1_000):
            # Written as people write them, so every row is canonicalised the long way.
            lines = "".join(
                f"(212) 55{n // 10_000 % 10}-{n % 10_000:04d}\n"
                for n in range(start, start + 1_000)
            )
            yield lines.encode()
            if start == rows // 2:
                half.set()
                await go_on.wait()

    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # As `stopgate serve` does once started (gateway/cli.py): the objects made so far, here
    # by every earlier test of the session, are frozen, so a pass of the collector over them
    # (seen once at 0.51 s in a full run) is not counted as a pause this import caused.
    gc.collect()
    gc.freeze()
    try:
        ticking = asyncio.create_task(ticker())
        started = time.perf_counter()
        importing = asyncio.create_task(put(gateway, "big", body()))
        await half.wait()
        # Half the body is in; the import is still open, and a send is answered meanwhile.
        assert not importing.done()
        assert (await gateway.twilio_send(CUSTOMER)).status == 201
        go_on.set()
        response = await importing
        elapsed = time.perf_counter() - started
        done.set()
        await ticking
    finally:
        gc.unfreeze()
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["list"]["members"] == answer["rows"] - answer["rejected"]
    assert answer["rows"] == rows
    # Canonicalising 20k numbers takes far longer than any single pause of the loop.
    print(f"import {elapsed:.2f} s, longest event-loop pause {max(gaps) * 1000:.0f} ms")
    assert max(gaps) < max(0.5, elapsed / 4)
