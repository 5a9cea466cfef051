"""Independent review: each test shows a real way a non-negotiable can be broken today.

Every test here fails on the code as reviewed; see the review report for causes and fixes.
"""

from __future__ import annotations

import json
import sqlite3
import time
import types
from pathlib import Path

import pytest

from gateway import inbound
from gateway.outbox import run_once
from tests.conftest import (
    BUSINESS,
    CUSTOMER,
    RC_SEND,
    SIM,
    TWILIO_SEND,
    Gateway,
    MakeGateway,
    basic,
)
from tests.service.test_inbound import post_twilio, twilio_form

SAFE_CUSTOMER = "+16505550122"


def _rc_json(to: str, text: str = "hello") -> bytes:
    return json.dumps(
        {"from": {"phoneNumber": BUSINESS}, "to": [{"phoneNumber": to}], "text": text}
    ).encode()


async def _rc_raw(gateway: Gateway, body: bytes, content_type: str) -> object:
    token = await gateway.rc_token()
    return await gateway.client.post(
        RC_SEND,
        data=body,
        headers={"Authorization": f"bearer {token}", "Content-Type": content_type},
    )


# ---- 1. never forward to an opted-out pair: multipart parsed differently from the carrier --


async def test_rc_multipart_json_part_named_json_is_the_one_the_carrier_reads(
    gateway: Gateway,
) -> None:
    """The carrier takes the first part typed application/json *or named "json"* as the
    request; Stopgate only looks for "application/json" in a part's headers. A part named
    "json" typed text/plain (blocked recipient) ahead of an application/json decoy (allowed
    recipient) reaches the carrier unchecked."""
    await gateway.opt_out()
    body = (
        b"--B\r\n"
        b'Content-Disposition: form-data; name="json"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + _rc_json(CUSTOMER, "blocked") + b"\r\n"
        b"--B\r\n"
        b'Content-Disposition: form-data; name="decoy"\r\n'
        b"Content-Type: application/json\r\n\r\n" + _rc_json(SAFE_CUSTOMER, "decoy") + b"\r\n"
        b"--B--\r\n"
    )
    response = await _rc_raw(gateway, body, "multipart/form-data; boundary=B")
    assert await gateway.delivered(CUSTOMER) == [], await response.text()


async def test_rc_multipart_boundary_inside_a_line_is_not_a_delimiter(gateway: Gateway) -> None:
    """RFC 2046: a delimiter is CRLF + "--boundary" at the start of a line. Stopgate splits on
    "--boundary" anywhere, so a decoy JSON part hidden inside a text part's content is what it
    checks, while the carrier reads the real JSON part after it."""
    await gateway.opt_out()
    body = (
        b"--B\r\n"
        b'Content-Disposition: form-data; name="note"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"x--B\r\n"
        b"Content-Type: application/json\r\n\r\n" + _rc_json(SAFE_CUSTOMER, "decoy") + b"\r\n"
        b"--B\r\n"
        b'Content-Disposition: form-data; name="json"\r\n'
        b"Content-Type: application/json\r\n\r\n" + _rc_json(CUSTOMER, "blocked") + b"\r\n"
        b"--B--\r\n"
    )
    response = await _rc_raw(gateway, body, "multipart/form-data; boundary=B")
    assert await gateway.delivered(CUSTOMER) == [], await response.text()


# ---- 1. never forward to an opted-out pair: a form charset the gateway ignores -------------


async def test_twilio_form_charset_is_honoured_or_refused(gateway: Gateway) -> None:
    """The carrier decodes a form body in its declared charset; Stopgate always reads UTF-8.
    In UTF-7 "+ACY-" is "&" and "+AD0-" is "=", so the carrier sees a first To that Stopgate
    never saw."""
    await gateway.opt_out()
    body = b"Note=x+ACY-To+AD0-6505550111&To=6505550122&From=%2B16505550100&Body=hi"
    response = await gateway.client.post(
        TWILIO_SEND,
        data=body,
        headers={
            **basic(SIM.twilio_account_sid, SIM.twilio_auth_token),
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-7",
        },
    )
    delivered = [m["to"] for m in await gateway.delivered()]
    assert "6505550111" not in delivered, (response.status, delivered)


# ---- 5. bad input is a 4xx, never a 500 ------------------------------------------------------


async def test_deeply_nested_json_send_is_400_not_500(gateway: Gateway) -> None:
    body = b'{"from": {"phoneNumber": "+16505550100"}, "x": ' + b"[" * 200_000 + b"]" * 200_000
    body += b"}"
    response = await _rc_raw(gateway, body, "application/json")
    assert response.status == 400, response.status


async def test_deeply_nested_twilio_json_webhook_is_400_not_500(gateway: Gateway) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    response = await gateway.client.post(
        "/webhooks/twilio", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status in (400, 403), response.status


async def test_lone_surrogate_in_a_messenger_address_is_400_not_500(gateway: Gateway) -> None:
    body = (
        b'{"from": {"phoneNumber": "+16505550100"}, '
        b'"to": [{"phoneNumber": "messenger:\\ud800"}], "text": "hi"}'
    )
    response = await _rc_raw(gateway, body, "application/json")
    assert 400 <= response.status < 500, response.status


# ---- 2. never lose a STOP -------------------------------------------------------------------


async def test_stop_spooled_after_a_torn_line_survives_the_drain(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    """Worker processes share the spool. One crashes mid-append while the store is down,
    leaving a torn last line with no newline (never acknowledged). The next worker's append is
    glued onto it, so load() discards that *acknowledged* STOP as unparseable, and drain()
    truncates it away for good."""
    spool = tmp_path / "spool.jsonl"
    gateway = await make_gateway(store=f"sqlite:///{tmp_path / 'stopgate.db'}?busy_timeout=0.2")
    holder = sqlite3.connect(tmp_path / "stopgate.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        # another worker on this spool died mid-append
        spool.write_bytes(b'{"provider":"twilio","message_id":"SMtorn","rece')
        response = await post_twilio(gateway, twilio_form("STOP"))
        assert response.status == 200  # acknowledged: the carrier will not send it again
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await run_once(gateway.app)  # store back: the spool is drained
    response = await gateway.twilio_send(CUSTOMER)
    assert response.status == 400, "the acknowledged STOP was lost"
    assert await gateway.delivered() == []


async def test_stop_is_not_outranked_by_an_earlier_opt_in_on_a_skewed_clock(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live writes are stamped by the store's clock (max(now, last + 1); on PostgreSQL the
    database server's clock), but an inbound STOP carries the receiving gateway's wall clock.
    A gateway host 2 s behind the store's clock (or an NTP step back): the customer is opted in
    through the API, then texts STOP; the STOP is acknowledged, "older" than the opt-in, not
    applied - and sends keep reaching them."""
    await gateway.set_consent({"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptIn"})
    real = time.time_ns
    skewed = types.SimpleNamespace(time_ns=lambda: real() - 2_000_000_000)
    monkeypatch.setattr(inbound, "time", skewed)
    response = await post_twilio(gateway, twilio_form("STOP"))
    assert response.status == 200
    assert "<Message>" in await response.text()  # the opt-out confirmation went out
    blocked = await gateway.twilio_send(CUSTOMER)
    assert blocked.status == 400, "a send after an acknowledged STOP was forwarded"
