"""The consents API as Stopgate serves it (the write path of the outbound issue)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from gateway.store.base import RecordQuery
from tests.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    CONSENTS,
    CUSTOMER,
    OTHER_BUSINESS,
    SIM,
    Gateway,
    MakeGateway,
)

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


AUDITOR = "auditor-token-value"
ROTATED = "new-admin-token-value"


@pytest.fixture
async def roles_gateway(make_gateway: MakeGateway) -> Gateway:
    from gateway.config import TokenSpec

    def spec(name: str, token: str, role: str) -> TokenSpec:
        return TokenSpec(name, hashlib.sha256(token.encode()).hexdigest(), role)

    return await make_gateway(
        tokens=(spec("audit", AUDITOR, "auditor"), spec("rotated", ROTATED, "admin")),
        ringcentral_account_id=SIM.rc_account_id,
    )


async def test_auditor_reads_and_exports_but_cannot_write(roles_gateway: Gateway) -> None:
    auditor = {"Authorization": f"Bearer {AUDITOR}"}
    body = {"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}]}
    for method in ("PATCH", "DELETE"):
        response = await roles_gateway.client.request(method, CONSENTS, json=body, headers=auditor)
        assert response.status == 403
        assert (await response.json())["reason"] == "forbidden"
    for path in (CONSENTS, CONSENTS + "/export", CONSENTS + "/history"):
        assert (await roles_gateway.client.get(path, headers=auditor)).status == 200


async def test_several_admin_tokens_are_valid_at_once(roles_gateway: Gateway) -> None:
    body = {"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}]}
    for token in (ADMIN_TOKEN, ROTATED):
        response = await roles_gateway.client.patch(
            CONSENTS, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 200
    history = await (await roles_gateway.client.get(CONSENTS + "/history", headers=AUTH)).json()
    assert [h["actor"] for h in history["records"]] == ["admin-token", "token:rotated"]


async def test_a_ringcentral_token_of_the_account_works_and_others_do_not(
    roles_gateway: Gateway,
) -> None:
    token = await roles_gateway.rc_token()
    response = await roles_gateway.client.get(
        CONSENTS, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200
    refused = await roles_gateway.client.get(
        CONSENTS, headers={"Authorization": "Bearer not-a-ringcentral-token"}
    )
    assert refused.status == 401


async def test_delete_removes_the_record_and_history_keeps_it(gateway: Gateway) -> None:
    await gateway.opt_out()
    assert (await gateway.twilio_send(CUSTOMER)).status == 400
    response = await gateway.client.delete(
        CONSENTS, json={"records": [{"from": BUSINESS, "to": CUSTOMER}]}, headers=AUTH
    )
    assert response.status == 200
    assert [r["optStatus"] for r in (await response.json())["records"]] == ["OptOut"]
    assert (await gateway.twilio_send(CUSTOMER)).status == 201
    history = await (
        await gateway.client.get(CONSENTS + "/history", params={"to": CUSTOMER}, headers=AUTH)
    ).json()
    assert [(h["oldStatus"], h["newStatus"]) for h in history["records"]] == [
        (None, "OptOut"),
        ("OptOut", "Deleted"),
    ]


async def test_history_pages(gateway: Gateway) -> None:
    for status in ["OptOut", "OptIn"] * 6:
        await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": status})
    seen: list[str] = []
    params: dict[str, str] = {"perPage": "5", "to": "(650) 555-0111"}
    while True:
        page = await (
            await gateway.client.get(CONSENTS + "/history", params=params, headers=AUTH)
        ).json()
        seen += [h["newStatus"] for h in page["records"]]
        if "nextPageToken" not in page["paging"]:
            break
        params["pageToken"] = page["paging"]["nextPageToken"]
    assert seen == ["OptOut", "OptIn"] * 6


async def test_previous_page_token_walks_back(gateway: Gateway) -> None:
    await gateway.set_consent(
        *({"from": BUSINESS, "to": f"+1650555{n:04d}", "optStatus": "OptOut"} for n in range(30))
    )
    pages: list[list[str]] = []
    params: dict[str, str] = {"perPage": "10"}
    for _ in range(3):
        page = await (await gateway.client.get(CONSENTS, params=params, headers=AUTH)).json()
        pages.append([r["to"] for r in page["records"]])
        if "nextPageToken" in page["paging"]:
            params["pageToken"] = page["paging"]["nextPageToken"]
    assert "nextPageToken" not in page["paging"]
    back = await (
        await gateway.client.get(
            CONSENTS,
            params={"perPage": "10", "pageToken": page["paging"]["previousPageToken"]},
            headers=AUTH,
        )
    ).json()
    assert [r["to"] for r in back["records"]] == pages[1]


async def test_a_page_token_only_works_with_its_own_filters(gateway: Gateway) -> None:
    await gateway.set_consent(
        *({"from": BUSINESS, "to": f"+1650555{n:04d}", "optStatus": "OptOut"} for n in range(5))
    )
    page = await (await gateway.client.get(CONSENTS, params={"perPage": "2"}, headers=AUTH)).json()
    other = await gateway.client.get(
        CONSENTS,
        params={"perPage": "2", "optStatus": "OptIn", "pageToken": page["paging"]["nextPageToken"]},
        headers=AUTH,
    )
    assert other.status == 400
    assert (await other.json())["reason"] == "invalid-page-token"


async def test_opt_in_evidence_is_kept_with_the_record_and_its_history(gateway: Gateway) -> None:
    evidence = {
        "method": "web-form",
        "url": "https://example.com/join",
        "ip": "203.0.113.9",
        "consentText": "I agree to receive marketing texts from Acme.",
        "collectedAt": "2026-11-01T10:00:00Z",
    }
    await gateway.set_consent(
        {"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn", "evidence": evidence}
    )
    listed = await (await gateway.client.get(CONSENTS, headers=AUTH)).json()
    assert listed["records"][0]["evidence"] == evidence
    history = await (await gateway.client.get(CONSENTS + "/history", headers=AUTH)).json()
    assert history["records"][0]["evidence"] == evidence
    bad = await patch(
        gateway,
        {
            "records": [
                {
                    "from": BUSINESS,
                    "to": CUSTOMER,
                    "optStatus": "OptIn",
                    "evidence": {"method": "telepathy"},
                }
            ]
        },
    )
    assert bad.status == 400
    assert (await bad.json())["errors"][0]["reason"] == "malformed-evidence"


async def test_export_streams_csv_that_reimports_to_the_same_state(
    gateway: Gateway, tmp_path: Path
) -> None:
    await gateway.set_consent(
        *(
            {
                "from": BUSINESS,
                "to": f"+1650555{n:04d}",
                "optStatus": "OptOut" if n % 3 else "OptIn",
            }
            for n in range(40)
        ),
        {"from": "*", "to": "+16505559999", "optStatus": "OptOut", "note": "=HYPERLINK(x)"},
    )
    response = await gateway.client.get(CONSENTS + "/export", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    text = await response.text()
    lines = text.splitlines()
    assert lines[0] == "FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME,NOTE"
    assert len(lines) == 42
    assert "'=HYPERLINK(x)" in text
    from gateway.consent_csv import RejectedRow, parse_rows

    rows = list(parse_rows(text.splitlines(keepends=True), region="US", actor="reimport"))
    assert not [r for r in rows if isinstance(r, RejectedRow)]
    assert {
        (r.from_key, r.to_key, r.status.value) for r in rows if not isinstance(r, RejectedRow)
    } == {
        (("*" if r["from"] == "*" else r["from"]), r["to"], r["optStatus"])
        for r in (
            await (
                await gateway.client.get(CONSENTS, params={"perPage": "100"}, headers=AUTH)
            ).json()
        )["records"]
    }


async def test_paging_10000_records_under_concurrent_writes_loses_and_repeats_none(
    gateway: Gateway,
) -> None:
    numbers = [f"+1650{n:07d}" for n in range(2_000_000, 2_010_000)]
    for start in range(0, len(numbers), 1000):
        await gateway.set_consent(
            *(
                {"from": BUSINESS, "to": n, "optStatus": "OptOut"}
                for n in numbers[start : start + 1000]
            )
        )
    stop = asyncio.Event()

    async def writer() -> None:
        flip = 0
        while not stop.is_set():
            batch = numbers[flip % 10_000 : flip % 10_000 + 50]
            status = "OptIn" if flip % 2 else "OptOut"
            await gateway.set_consent(
                *({"from": BUSINESS, "to": n, "optStatus": status} for n in batch)
            )
            await gateway.set_consent(
                {"from": OTHER_BUSINESS, "to": f"+1651{flip:07d}", "optStatus": "OptOut"}
            )
            flip += 37

    task = asyncio.create_task(writer())
    seen: list[tuple[str, str]] = []
    params: dict[str, str] = {"perPage": "1000", "from": BUSINESS}
    try:
        while True:
            page = await (await gateway.client.get(CONSENTS, params=params, headers=AUTH)).json()
            seen += [(r["from"], r["to"]) for r in page["records"]]
            token = page["paging"].get("nextPageToken")
            if not token:
                break
            params["pageToken"] = token
            await asyncio.sleep(0)
    finally:
        stop.set()
        await task
    assert len(seen) == len(set(seen)) == 10_000
    assert {to for _, to in seen} == set(numbers)


async def test_erasing_a_customer_keeps_them_blocked_without_keeping_the_number(
    gateway: Gateway,
) -> None:
    from gateway.keys import STORE

    await gateway.opt_out()
    await gateway.twilio_send(CUSTOMER)  # a blocked send, logged
    response = await gateway.client.post(
        CONSENTS + "/erase", json={"to": "(650) 555-0111"}, headers=AUTH
    )
    assert response.status == 200
    assert (await response.json())["stillBlocked"] is True
    store = gateway.app[STORE]
    assert await store.history(to_key=CUSTOMER, from_key=None, after_id=None, limit=10) == []
    assert await store.list_records(RecordQuery(to_key=CUSTOMER), after=None, limit=10) == []
    assert all(e.to_key != CUSTOMER for _, e in await store.blocked_sends(before_id=None, limit=10))
    dump = "".join(r.to_key for r in await store.list_records(RecordQuery(), after=None, limit=100))
    assert "6505550111" not in dump
    blocked = await gateway.twilio_send(CUSTOMER, from_=OTHER_BUSINESS)
    assert blocked.status == 400


async def test_erasing_a_customer_who_never_opted_out_leaves_nothing(gateway: Gateway) -> None:
    await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn"})
    response = await gateway.client.post(CONSENTS + "/erase", json={"to": CUSTOMER}, headers=AUTH)
    assert (await response.json())["stillBlocked"] is False
    assert (await gateway.twilio_send(CUSTOMER)).status == 201


async def test_retention_prunes_old_blocked_sends_and_history(gateway: Gateway) -> None:
    from gateway.keys import STORE
    from gateway.store.base import BlockedSend, ConsentChange
    from policy.consent import OptStatus, Source

    store = gateway.app[STORE]
    await store.apply(
        [ConsentChange(BUSINESS, CUSTOMER, OptStatus.OPT_OUT, Source.API, "t", modified_us=1)]
    )
    await store.log_blocked(BlockedSend(1, "twilio", BUSINESS, CUSTOMER, "opt-out", "r", 1, "x"))
    await gateway.twilio_send(CUSTOMER)
    removed = await store.prune(blocked_before_us=10**15, history_before_us=10**15)
    assert removed == 2
    assert len(await store.blocked_sends(before_id=None, limit=10)) == 1
    # The record itself stays: retention trims logs, never consent.
    assert (await gateway.twilio_send(CUSTOMER)).status == 400


@pytest.mark.parametrize("note", ["nul \x00 inside", "lone \ud800 surrogate"])
async def test_notes_that_no_store_can_keep_are_refused(gateway: Gateway, note: str) -> None:
    import json as _json

    body = _json.dumps(
        {"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut", "note": note}]}
    )
    response = await gateway.client.patch(
        CONSENTS, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["reason"] == "malformed-note"
