"""The compliance console's routes: the page and its headers, sign-in and the session cookie,
CSRF and origin checks, the blocked-send log (filters, paging, totals, CSV), the chart's data,
and the consents routes behind the console's sign-in. (The page itself, in a real browser, is
tested in ``tests/e2e/test_console.py``.)"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

import pytest

from gateway.admin.sessions import COOKIE
from gateway.config import TokenSpec
from gateway.keys import STORE
from tests.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    CUSTOMER,
    OTHER_BUSINESS,
    RC_SEND,
    Gateway,
    MakeGateway,
)

AUDITOR_TOKEN = "test-auditor-token"
AUDITOR = TokenSpec("audit", hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest(), "auditor")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OTHER_CUSTOMER = "+16505550112"
XSS = "<script>alert(1)</script>"


@pytest.fixture
async def console(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway(tokens=(AUDITOR,), blocked_log_text=True)


def origin(gateway: Gateway) -> str:
    return str(gateway.client.make_url("/")).rstrip("/")


async def sign_in(gateway: Gateway, token: str = ADMIN_TOKEN) -> dict[str, Any]:
    response = await gateway.client.post("/admin/session", json={"token": token})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def write_headers(gateway: Gateway, csrf: str) -> dict[str, str]:
    return {"X-CSRF-Token": csrf, "Origin": origin(gateway)}


def record(to: str = CUSTOMER, status: str = "OptOut", note: str | None = "asked by phone") -> Any:
    body: dict[str, Any] = {"from": "*", "to": to, "optStatus": status}
    if note is not None:
        body["note"] = note
    return {"records": [body]}


# --- page and assets ----------------------------------------------------------------------


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(console: Gateway) -> None:
    page = await console.client.get("/admin/")
    assert page.status == 200
    assert page.content_type == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "require-trusted-types-for 'script'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = await page.text()
    # No inline script, nothing from elsewhere.
    assert '<script src="/admin/static/console.js" defer></script>' in html
    assert "<script>" not in html and "http://" not in html and "https://" not in html
    for path, kind in [
        ("/admin/static/console.js", "text/javascript"),
        ("/admin/static/console.css", "text/css"),
    ]:
        asset = await console.client.get(path)
        assert (asset.status, asset.content_type) == (200, kind)
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    script = await (await console.client.get("/admin/static/console.js")).text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "eval(" not in script
    # Anything else under /admin/static is the usual 404, never a file read.
    assert (await console.client.get("/admin/static/../app.py")).status == 404
    assert (await console.client.get("/admin/static/index.html")).status == 404


# --- sign-in and sessions -----------------------------------------------------------------


async def test_sign_in_sets_an_http_only_strict_cookie_holding_no_token(console: Gateway) -> None:
    response = await console.client.post("/admin/session", json={"token": ADMIN_TOKEN})
    assert response.status == 200
    body = await response.json()
    assert (body["name"], body["role"], body["canWrite"]) == ("admin-token", "admin", True)
    assert len(body["csrfToken"]) >= 32
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/admin"
    assert not cookie["secure"]  # plain http here
    assert ADMIN_TOKEN not in cookie.value and len(cookie.value) >= 40
    assert response.headers["Cache-Control"] == "no-store"
    # The store keeps the id's hash only.
    hashed = hashlib.sha256(cookie.value.encode()).hexdigest()
    kept = await console.app[STORE].console_session(hashed, 0)
    assert kept is not None and kept.name == "admin-token" and kept.role == "admin"
    assert await console.app[STORE].console_session(cookie.value, 0) is None
    # The cookie alone now reads.
    me = await console.client.get("/admin/session")
    assert me.status == 200
    assert (await me.json())["csrfToken"] == body["csrfToken"]


async def test_the_cookie_is_secure_when_the_request_came_over_https(console: Gateway) -> None:
    response = await console.client.post(
        "/admin/session", json={"token": ADMIN_TOKEN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert response.status == 200
    assert response.cookies[COOKIE]["secure"] is True


async def test_sign_in_refusals(console: Gateway) -> None:
    client = console.client
    wrong = await client.post("/admin/session", json={"token": "not-a-token"})
    assert wrong.status == 401
    assert (await wrong.json())["error"]["reason"] == "unauthorized"
    assert COOKIE not in wrong.cookies
    form = await client.post("/admin/session", data={"token": ADMIN_TOKEN})
    assert form.status == 415
    plain = await client.post(
        "/admin/session",
        data=f'{{"token": "{ADMIN_TOKEN}"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status == 415  # a cross-site HTML form's text/plain trick
    missing = await client.post("/admin/session", json={"token": ""})
    assert missing.status == 400
    cross = await client.post(
        "/admin/session", json={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status == 403
    fetched = await client.post(
        "/admin/session", json={"token": ADMIN_TOKEN}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetched.status == 403
    assert (await client.get("/admin/session")).status == 401


async def test_sign_out_ends_the_session_everywhere(console: Gateway) -> None:
    body = await sign_in(console)
    cookie = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/admin/"))
    session_id = cookie[COOKIE].value
    # Sign-out is a write: without the CSRF token it is refused and the session lives on.
    refused = await console.client.delete("/admin/session", headers={"Origin": origin(console)})
    assert refused.status == 403
    assert (await console.client.get("/admin/session")).status == 200
    out = await console.client.delete(
        "/admin/session", headers=write_headers(console, body["csrfToken"])
    )
    assert out.status == 204
    assert (await console.client.get("/admin/session")).status == 401
    # Replaying the old cookie gets nothing either.
    replay = await console.client.get(
        "/admin/blocked", headers={"Cookie": f"{COOKIE}={session_id}"}
    )
    assert replay.status == 401


async def test_a_new_sign_in_replaces_the_old_session(console: Gateway) -> None:
    await sign_in(console)
    first = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/admin/"))
    old_id = first[COOKIE].value
    await sign_in(console, AUDITOR_TOKEN)
    store = console.app[STORE]
    assert await store.console_session(hashlib.sha256(old_id.encode()).hexdigest(), 0) is None
    me = await (await console.client.get("/admin/session")).json()
    assert (me["name"], me["role"], me["canWrite"]) == ("token:audit", "auditor", False)


async def test_a_bearer_token_decides_when_present(console: Gateway) -> None:
    await sign_in(console)
    wrong = await console.client.get("/admin/blocked", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    bearer = await console.client.get("/admin/session", headers=ADMIN)
    body = await bearer.json()
    assert body["role"] == "admin" and "csrfToken" not in body


# --- writes: CSRF, origin, role, note ------------------------------------------------------


async def test_console_writes_need_the_csrf_token_and_this_origin(console: Gateway) -> None:
    csrf = (await sign_in(console))["csrfToken"]
    client = console.client
    no_token = await client.patch(
        "/admin/consents", json=record(), headers={"Origin": origin(console)}
    )
    assert no_token.status == 403
    assert (await no_token.json())["error"]["reason"] == "csrf-token"
    wrong_token = await client.patch(
        "/admin/consents", json=record(), headers=write_headers(console, csrf + "x")
    )
    assert wrong_token.status == 403
    no_origin = await client.patch("/admin/consents", json=record(), headers={"X-CSRF-Token": csrf})
    assert no_origin.status == 403
    assert (await no_origin.json())["error"]["reason"] == "cross-origin"
    evil = await client.patch(
        "/admin/consents",
        json=record(),
        headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
    )
    assert evil.status == 403
    cross_site = await client.patch(
        "/admin/consents",
        json=record(),
        headers={**write_headers(console, csrf), "Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status == 403
    # Nothing was written by any of those.
    assert (await console.twilio_send(CUSTOMER)).status == 201
    ok = await client.patch("/admin/consents", json=record(), headers=write_headers(console, csrf))
    assert ok.status == 200, await ok.text()
    [written] = (await ok.json())["records"]
    assert (written["from"], written["to"], written["optStatus"]) == ("*", CUSTOMER, "OptOut")
    assert written["note"] == "asked by phone"
    refused = await console.twilio_send(CUSTOMER)
    assert refused.status == 400
    assert (await refused.json())["code"] == 21610
    history = await client.get("/admin/consents/history", params={"to": "(650) 555-0111"})
    [entry] = (await history.json())["records"]
    assert (entry["actor"], entry["note"], entry["newStatus"]) == (
        "admin-token",
        "asked by phone",
        "OptOut",
    )


async def test_a_referer_of_this_origin_stands_in_for_a_missing_origin(console: Gateway) -> None:
    csrf = (await sign_in(console))["csrfToken"]
    response = await console.client.patch(
        "/admin/consents",
        json=record(),
        headers={"X-CSRF-Token": csrf, "Referer": origin(console) + "/admin/"},
    )
    assert response.status == 200


async def test_a_change_by_hand_needs_a_note(console: Gateway) -> None:
    csrf = (await sign_in(console))["csrfToken"]
    for note in (None, "", "   "):
        response = await console.client.patch(
            "/admin/consents", json=record(note=note), headers=write_headers(console, csrf)
        )
        assert response.status == 400
        assert (await response.json())["error"]["reason"] == "missing-note"
    # The consents API itself keeps its contract (a note is optional there).
    api = await console.client.patch(
        "/restapi/v2/accounts/~/sms/consents", json=record(note=None), headers=ADMIN
    )
    assert api.status == 200


async def test_the_auditor_reads_but_cannot_write(console: Gateway) -> None:
    me = await sign_in(console, AUDITOR_TOKEN)
    assert me["canWrite"] is False
    assert (await console.client.get("/admin/blocked")).status == 200
    assert (await console.client.get("/admin/consents")).status == 200
    forged = await console.client.patch(
        "/admin/consents", json=record(), headers=write_headers(console, me["csrfToken"])
    )
    assert forged.status == 403
    assert (await forged.json())["error"]["reason"] == "forbidden"
    bearer = await console.client.patch(
        "/admin/consents", json=record(), headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"}
    )
    assert bearer.status == 403
    api = await console.client.patch(
        "/restapi/v2/accounts/~/sms/consents",
        json=record(),
        headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
    )
    assert api.status == 403
    assert (await console.twilio_send(CUSTOMER)).status == 201


async def test_a_bearer_write_needs_no_csrf_token(console: Gateway) -> None:
    response = await console.client.patch("/admin/consents", json=record(), headers=ADMIN)
    assert response.status == 200


# --- the blocked-send log -----------------------------------------------------------------


async def blocked_sends(gateway: Gateway) -> None:
    """Four blocked sends: three through Twilio (two customers, two reasons), one through
    RingCentral."""
    await gateway.set_consent(
        {"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"},
        {"from": "*", "to": OTHER_CUSTOMER, "optStatus": "OptOut"},
    )
    assert (await gateway.twilio_send(CUSTOMER, body=XSS)).status == 400
    assert (await gateway.twilio_send(CUSTOMER, body='=HYPERLINK("x")')).status == 400
    assert (await gateway.twilio_send(OTHER_CUSTOMER, from_=OTHER_BUSINESS)).status == 400
    rc = await gateway.rc_post(
        RC_SEND,
        {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": CUSTOMER}], "text": "@rc"},
    )
    assert rc.status == 400


async def test_the_blocked_log_filters_by_any_written_number(console: Gateway) -> None:
    await blocked_sends(console)
    client = console.client
    everything = await (await client.get("/admin/blocked", headers=ADMIN)).json()
    assert [e["reason"] for e in everything["records"]] == [
        "opt-out",
        "opt-out-all",
        "opt-out",
        "opt-out",
    ]
    assert everything["totals"] == {"count": 4, "byReason": {"opt-out": 3, "opt-out-all": 1}}
    newest = everything["records"][0]
    assert (newest["dialect"], newest["from"], newest["to"], newest["text"]) == (
        "ringcentral",
        BUSINESS,
        CUSTOMER,
        "@rc",
    )
    for written in (
        "(650) 555-0111",
        "tel:+1-650-555-0111",
        "1 650 555 0111",
        "６５０５５５０１１１",
    ):
        page = await (
            await client.get("/admin/blocked", params={"customer": written}, headers=ADMIN)
        ).json()
        assert page["totals"]["count"] == 3, written
        assert {e["to"] for e in page["records"]} == {CUSTOMER}
    business = await (
        await client.get("/admin/blocked", params={"business": "(650) 555-0199"}, headers=ADMIN)
    ).json()
    assert [e["to"] for e in business["records"]] == [OTHER_CUSTOMER]
    twilio = await (
        await client.get(
            "/admin/blocked", params={"dialect": "twilio", "reason": "opt-out"}, headers=ADMIN
        )
    ).json()
    assert twilio["totals"] == {"count": 2, "byReason": {"opt-out": 2}}
    assert {e["text"] for e in twilio["records"]} == {XSS, '=HYPERLINK("x")'}
    later = await (
        await client.get(
            "/admin/blocked", params={"from_time": "2999-01-01T00:00:00Z"}, headers=ADMIN
        )
    ).json()
    assert later["totals"] == {"count": 0, "byReason": {}} and later["records"] == []
    until = await (
        await client.get("/admin/blocked", params={"to_time": "2000-01-01"}, headers=ADMIN)
    ).json()
    assert until["totals"]["count"] == 0
    recent = await (
        await client.get(
            "/admin/blocked",
            params={"from_time": "2000-01-01T00:00:00+02:00", "to_time": "2999-01-01T00:00:00"},
            headers=ADMIN,
        )
    ).json()
    assert recent["totals"]["count"] == 4


async def test_the_blocked_log_pages_with_signed_tokens(console: Gateway) -> None:
    await blocked_sends(console)
    client = console.client
    seen: list[str] = []
    params = {"per_page": "1", "customer": CUSTOMER}
    while True:
        page = await (await client.get("/admin/blocked", params=params, headers=ADMIN)).json()
        seen += [e["id"] for e in page["records"]]
        assert page["totals"]["count"] == 3  # totals cover the filter, not the page
        token = page["paging"].get("nextPageToken")
        if token is None:
            break
        params = {**params, "page_token": token}
    assert len(seen) == 3 and seen == sorted(seen, key=int, reverse=True)
    first = await (
        await client.get("/admin/blocked", params={"per_page": "1"}, headers=ADMIN)
    ).json()
    token = first["paging"]["nextPageToken"]
    # A token is tied to its filter, and tampering shows.
    other = await client.get(
        "/admin/blocked", params={"page_token": token, "dialect": "twilio"}, headers=ADMIN
    )
    assert other.status == 400
    tampered = await client.get(
        "/admin/blocked", params={"page_token": token[:-2] + "AA"}, headers=ADMIN
    )
    assert tampered.status == 400
    assert (await tampered.json())["error"]["reason"] == "invalid-page-token"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"from_time": "yesterday"}, "malformed-time"),
        ({"customer": "12345"}, "not-a-customer-address"),
        ({"customer": "abc"}, None),
        ({"dialect": "sinch"}, "unknown-dialect"),
        ({"per_page": "0"}, "malformed-per-page"),
        ({"per_page": "x"}, "malformed-per-page"),
        ({"format": "xml"}, "unknown-format"),
        ({"reason": "x" * 41}, "malformed-reason"),
        ({"reason": ",".join(f"r{n}" for n in range(11))}, "malformed-reason"),
    ],
)
async def test_malformed_filters_are_refused(
    console: Gateway, params: dict[str, str], reason: str | None
) -> None:
    response = await console.client.get("/admin/blocked", params=params, headers=ADMIN)
    assert response.status == 400
    body = await response.json()
    if reason is not None:
        assert body["error"]["reason"] == reason


async def test_the_blocked_log_needs_a_caller(console: Gateway) -> None:
    response = await console.client.get("/admin/blocked")
    assert response.status == 401
    assert (await response.json())["error"]["reason"] == "unauthorized"
    assert (await console.client.get("/admin/blocked", params={"format": "csv"})).status == 401


async def test_the_csv_export_follows_the_filter_and_neutralises_formulas(
    console: Gateway,
) -> None:
    await blocked_sends(console)
    await sign_in(console, AUDITOR_TOKEN)  # the auditor exports too
    response = await console.client.get(
        "/admin/blocked", params={"format": "csv", "customer": "650-555-0111"}
    )
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="blocked-sends.csv"'
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == [
        "TIME",
        "DIALECT",
        "FROM",
        "TO",
        "REASON",
        "REQUEST_ID",
        "TEXT_LENGTH",
        "TEXT_SHA256",
        "TEXT",
    ]
    body = rows[1:]
    assert len(body) == 3
    assert {row[3] for row in body} == {CUSTOMER}  # E.164 stays data
    assert [row[8] for row in body] == ["'@rc", '\'=HYPERLINK("x")', XSS]
    assert [row[1] for row in body] == ["ringcentral", "twilio", "twilio"]
    assert all(row[6].isdigit() and len(row[7]) == 64 for row in body)


async def test_a_request_id_that_looks_like_a_formula_is_neutralised(console: Gateway) -> None:
    from gateway.store.base import BlockedSend

    await console.app[STORE].log_blocked(
        BlockedSend(1, "twilio", BUSINESS, CUSTOMER, "opt-out", "-2+3", 1, "00", "+cmd")
    )
    response = await console.client.get("/admin/blocked", params={"format": "csv"}, headers=ADMIN)
    [row] = list(csv.reader(io.StringIO(await response.text())))[1:]
    assert (row[5], row[8]) == ("'-2+3", "'+cmd")


async def test_the_csv_export_streams_every_page(console: Gateway) -> None:
    from gateway.admin import blocked as blocked_module
    from gateway.store.base import BlockedSend

    store = console.app[STORE]
    count = blocked_module.EXPORT_PAGE + 7
    for n in range(count):
        await store.log_blocked(
            BlockedSend(n + 1, "twilio", BUSINESS, CUSTOMER, "opt-out", f"r{n}", 1, "00")
        )
    response = await console.client.get("/admin/blocked", params={"format": "csv"}, headers=ADMIN)
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert len(rows) == count + 1
    assert rows[1][5] == f"r{count - 1}" and rows[-1][5] == "r0"


# --- the chart's data ---------------------------------------------------------------------


async def test_daily_activity_fills_every_day_of_the_range(console: Gateway) -> None:
    await blocked_sends(console)
    body = await (await console.client.get("/admin/stats/daily", headers=ADMIN)).json()
    days = body["days"]
    assert len(days) == 31  # the last 30 days and today's, whole
    assert days[-1]["blocked"] == 4
    assert days[-1]["optOuts"] == 2  # the two opt-outs set by blocked_sends
    assert all(d["blocked"] == d["optOuts"] == 0 for d in days[:-1])
    assert days == sorted(days, key=lambda d: d["date"])
    ranged = await (
        await console.client.get(
            "/admin/stats/daily",
            params={"from_time": "2024-01-01T00:00:00Z", "to_time": "2024-01-03T12:00:00Z"},
            headers=ADMIN,
        )
    ).json()
    assert [d["date"] for d in ranged["days"]] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    for params in (
        {"from_time": "2024-01-03T00:00:00Z", "to_time": "2024-01-01T00:00:00Z"},
        {"from_time": "2000-01-01T00:00:00Z", "to_time": "2024-01-01T00:00:00Z"},
        {"to_time": "0001-01-02T00:00:00Z"},
    ):
        response = await console.client.get("/admin/stats/daily", params=params, headers=ADMIN)
        assert response.status == 400, params


# --- consents behind the console ----------------------------------------------------------


async def test_the_opt_out_list_reads_like_the_consents_api(console: Gateway) -> None:
    await console.set_consent(
        {"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut", "note": XSS},
        {"from": "*", "to": OTHER_CUSTOMER, "optStatus": "OptIn"},
    )
    await sign_in(console, AUDITOR_TOKEN)
    listed = await console.client.get("/admin/consents", params={"optStatus": "OptOut"})
    api = await console.client.get(
        "/restapi/v2/accounts/~/sms/consents", params={"optStatus": "OptOut"}, headers=ADMIN
    )
    assert (await listed.json())["records"] == (await api.json())["records"]
    [found] = (
        await (await console.client.get("/admin/consents", params={"to": "650 555 0111"})).json()
    )["records"]
    assert found["note"] == XSS
    export = await console.client.get("/admin/consents/export", params={"to": CUSTOMER})
    assert export.status == 200 and export.content_type == "text/csv"
    assert "'<script>" not in await export.text()  # "<" is no formula character
    assert (await console.client.get("/admin/consents", params={"to": "x"})).status == 400
