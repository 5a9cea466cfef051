"""The consents API as Stopgate serves it (the write path of the outbound issue)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, BUSINESS, CONSENTS, CUSTOMER, Gateway

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def patch(gateway: Gateway, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await gateway.client.patch(CONSENTS, json=body, headers=headers or AUTH)


async def test_patch_then_get_round_trip(gateway: Gateway) -> None:
    reply = await gateway.set_consent(
        {"from": "(650) 555-0100", "to": "650-555-0111", "optStatus": "OptOut", "source": "Api"},
        {"from": "*", "to": "+16505550112", "optStatus": "OptOut"},
    )
    assert [(r["from"], r["to"], r["optStatus"]) for r in reply["records"]] == [
        (BUSINESS, CUSTOMER, "OptOut"),
        ("*", "+16505550112", "OptOut"),
    ]
    response = await gateway.client.get(CONSENTS, headers=AUTH)
    assert response.status == 200
    listed = await response.json()
    assert {(r["from"], r["to"]) for r in listed["records"]} == {
        (BUSINESS, CUSTOMER),
        ("*", "+16505550112"),
    }
    assert all(r["lastModifiedTime"].endswith("Z") for r in listed["records"])


async def test_get_filters_and_pages(gateway: Gateway) -> None:
    records = [
        {"from": BUSINESS, "to": f"+1650555{n:04d}", "optStatus": "OptOut" if n % 2 else "OptIn"}
        for n in range(1000, 1030)
    ]
    await gateway.set_consent(*records)
    seen: list[str] = []
    token = None
    while True:
        params = {"perPage": "7", "optStatus": "OptOut", "from": BUSINESS}
        if token:
            params["pageToken"] = token
        page = await (await gateway.client.get(CONSENTS, params=params, headers=AUTH)).json()
        seen += [r["to"] for r in page["records"]]
        token = page["paging"].get("nextPageToken")
        if not token:
            break
    assert seen == sorted(r["to"] for r in records if r["optStatus"] == "OptOut")


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic x"}, 401)],
)
async def test_consents_need_the_admin_token(
    gateway: Gateway, headers: dict[str, str], status: int
) -> None:
    body = {"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}]}
    assert (await gateway.client.patch(CONSENTS, json=body, headers=headers)).status == status
    assert (await gateway.client.get(CONSENTS, headers=headers)).status == status


BAD_RECORDS = [
    ({"from": BUSINESS, "to": CUSTOMER, "optStatus": "Maybe"}, "unknown-opt-status"),
    ({"from": BUSINESS, "to": CUSTOMER}, "unknown-opt-status"),
    ({"from": BUSINESS, "to": "+1555", "optStatus": "OptOut"}, "too-short"),
    ({"from": BUSINESS, "optStatus": "OptOut"}, "missing-to"),
    ({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut", "source": "Mars"}, "unknown-source"),
    ({"from": "*", "to": "*", "optStatus": "OptOut"}, "wildcard-not-allowed"),
    ("not a record", "malformed-record"),
]


@pytest.mark.parametrize(("record", "reason"), BAD_RECORDS)
async def test_a_bad_record_is_refused_alone_and_the_good_ones_apply(
    gateway: Gateway, record: Any, reason: str
) -> None:
    good = {"from": BUSINESS, "to": "+16505550199", "optStatus": "OptOut"}
    response = await patch(gateway, {"records": [good, record]})
    assert response.status == 200
    body = await response.json()
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, reason)]
    assert [r["to"] for r in body["records"]] == ["+16505550199"]
    listed = await (await gateway.client.get(CONSENTS, headers=AUTH)).json()
    assert [r["to"] for r in listed["records"]] == ["+16505550199"]


async def test_only_bad_records_is_400_and_changes_nothing(gateway: Gateway) -> None:
    response = await patch(gateway, {"records": [BAD_RECORDS[0][0], BAD_RECORDS[2][0]]})
    assert response.status == 400
    body = await response.json()
    assert body["reason"] == "invalid-records" and len(body["errors"]) == 2
    listed = await (await gateway.client.get(CONSENTS, headers=AUTH)).json()
    assert listed["records"] == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "malformed-body"),
        (b"[]", "missing-records"),
        (b'{"records": []}', "missing-records"),
    ],
)
async def test_malformed_patch_bodies(gateway: Gateway, body: bytes, reason: str) -> None:
    response = await gateway.client.patch(
        CONSENTS, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["reason"] == reason


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"pageToken": "!!!"}, "invalid-page-token"),
        ({"pageToken": "WzFd"}, "invalid-page-token"),
        ({"pageToken": "A" * 40}, "invalid-page-token"),
        ({"perPage": "0"}, "malformed-per-page"),
        ({"perPage": "x"}, "malformed-per-page"),
        ({"optStatus": "Sometimes"}, "unknown-opt-status"),
        ({"to": "nobody"}, "not-a-customer-address"),
        ({"dateFrom": "yesterday"}, "malformed-time"),
    ],
)
async def test_bad_queries_are_4xx(gateway: Gateway, params: dict[str, str], reason: str) -> None:
    response = await gateway.client.get(CONSENTS, params=params, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["reason"] == reason


async def test_oversize_patch_is_413(gateway: Gateway) -> None:
    records = [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}] * 1001
    response = await patch(gateway, {"records": records})
    assert response.status == 413
    assert (await response.json())["reason"] == "too-many-records"
