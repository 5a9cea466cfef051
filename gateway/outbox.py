"""The outbox worker: delivers what inbound events left to do, durably, with backoff.

Kinds:

* ``ringcentral-reply`` - a keyword confirmation sent through RingCentral with Stopgate's own
  login. It goes to the carrier directly, so it gets past the block its own STOP created, once.
  A confirmation not delivered within the confirmation window (5 minutes by default) is given up;
  one the carrier refuses (the customer is opted out at the carrier) is given up at once; a
  timeout (the carrier may have sent it) is given up rather than risk a second text.
* ``forward`` - the inbound event, forwarded to the app's webhook (Twilio requests re-signed for
  the app's URL). Delivered at least once: retried until the forward window closes.

The same task also drains the local spool into the store once the store is back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway import events
from gateway.config import Settings
from gateway.dialects import twilio as twilio_dialect
from gateway.errors import (
    StoreUnavailable,
    UpstreamConnectFailed,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from gateway.keys import CLIENT, INDEX, METRICS, OUTBOX_WAKE, RC_LOGIN, SETTINGS, SPOOL
from gateway.ringcentral_login import LoginUnavailable
from gateway.store.base import ConsentStore, OutboxEntry
from policy.consent import format_time

log = logging.getLogger("stopgate.outbox")

RINGCENTRAL_REPLY = "ringcentral-reply"
FORWARD = "forward"

_IDLE_SECONDS = 0.5
_SPOOL_RETRY_SECONDS = 0.1
"""While the spool holds events the store has not taken yet, the store is retried this often:
the spool must drain well within a second of the store's return."""
_MAX_BACKOFF_SECONDS = 60.0
_BATCH = 50
_REPLY_LIMIT = 64 * 1024
# Longer than any one delivery can take (client timeouts included). A worker that dies stops
# its heartbeat, and its leases pass to the others (or its own restart) after _STALE_US.
_LEASE_US = 120 * 1_000_000
_STALE_US = 3 * 1_000_000
_HEARTBEAT_US = 1_000_000
WORKER_ID = uuid.uuid4().hex
"""This process's outbox worker, as named in leases and heartbeats."""


class _Retry(Exception):
    pass


class _GiveUp(Exception):
    pass


async def forward_request(
    session: aiohttp.ClientSession, settings: Settings, payload: dict[str, Any]
) -> tuple[int, bytes]:
    """POST an inbound event to the app's webhook; (status, at most 64 KiB of its answer)."""
    body = base64.b64decode(payload["body"])
    url = str(payload["url"])
    headers: CIMultiDict[str] = CIMultiDict(
        {"Content-Type": str(payload["content_type"]), "X-Stopgate-Keyword": payload["keyword"]}
    )
    if payload.get("revocation"):
        headers["X-Stopgate-Revocation"] = str(payload["revocation"])
    if payload["provider"] == "twilio" and settings.twilio_auth_token is not None:
        # Re-signed for the app's URL with the same auth token, so the app's own check passes.
        form = payload["content_type"].startswith("application/x-www-form-urlencoded")
        params = parse_qsl(body.decode("utf-8"), keep_blank_values=True) if form else []
        headers["X-Twilio-Signature"] = twilio_dialect.signature(
            settings.twilio_auth_token.reveal(), url, params
        )
    elif payload.get("verification_token"):
        headers["Verification-Token"] = str(payload["verification_token"])
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
        answer = await response.content.read(_REPLY_LIMIT)
        return response.status, answer


def _backoff(entry: OutboxEntry) -> float:
    return float(min(_MAX_BACKOFF_SECONDS, 2.0**entry.attempts))


async def _already_sent(app: web.Application, entry: OutboxEntry, payload: dict[str, Any]) -> bool:
    """Whether RingCentral's message store shows this confirmation sent since it was queued
    (asked when a delivery was in flight at a crash). Unknown -> give up rather than risk a
    second text."""
    since = format_time(entry.created_us - 60_000_000)[:-4] + "Z"
    try:
        status, body = await app[RC_LOGIN].call(
            "GET",
            "/restapi/v1.0/account/~/extension/~/message-store"
            f"?direction=Outbound&messageType=SMS&perPage=1000&dateFrom={since}",
        )
        records = json.loads(body).get("records", []) if status == 200 else None
    except (LoginUnavailable, UpstreamUnreachable, UpstreamTimeout, ValueError) as exc:
        raise _GiveUp(f"outcome unknown after a crash, and unverifiable: {exc}") from None
    if records is None:
        raise _GiveUp(f"outcome unknown after a crash; message store answered {status}")
    wanted = "".join(c for c in str(payload["to"]) if c.isdigit())
    return any(
        record.get("subject") == payload["text"]
        and any(
            "".join(c for c in str(to.get("phoneNumber", "")) if c.isdigit()).endswith(wanted)
            for to in record.get("to", [])
            if isinstance(to, dict)
        )
        for record in records
        if isinstance(record, dict)
    )


async def _deliver_reply(app: web.Application, payload: dict[str, Any]) -> None:
    try:
        status, body = await app[RC_LOGIN].call(
            "POST",
            "/restapi/v1.0/account/~/extension/~/sms",
            {
                "from": {"phoneNumber": payload["from"]},
                "to": [{"phoneNumber": payload["to"]}],
                "text": payload["text"],
            },
        )
    except LoginUnavailable as exc:
        raise _GiveUp(str(exc)) from None
    except UpstreamConnectFailed as exc:
        raise _Retry(str(exc)) from None
    except (UpstreamUnreachable, UpstreamTimeout) as exc:
        raise _GiveUp(f"outcome unknown, not resent: {exc}") from None
    if 200 <= status < 300:
        return
    if status == 429 or status >= 500:
        raise _Retry(f"carrier answered {status}")
    raise _GiveUp(f"carrier refused the confirmation ({status}): {body[:200]!r}")


async def _deliver_forward(app: web.Application, payload: dict[str, Any]) -> None:
    try:
        status, _ = await forward_request(app[CLIENT], app[SETTINGS], payload)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _Retry(f"app unreachable: {type(exc).__name__}") from None
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise _Retry(f"app answered {status}")
    raise _GiveUp(f"app refused the event ({status})")


async def _deliver_event(app: web.Application, payload: dict[str, Any]) -> None:
    settings = app[SETTINGS]
    subscriber = next((s for s in settings.subscribers if s.name == payload["subscriber"]), None)
    if subscriber is None:
        raise _GiveUp(f"subscriber {payload['subscriber']!r} is no longer configured")
    body = json.dumps(payload["event"], separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        events.SIGNATURE_HEADER: events.signature(
            subscriber.secret.reveal(),
            int(time.time()),
            body,
            *([subscriber.previous_secret.reveal()] if subscriber.previous_secret else []),
        ),
    }
    try:
        async with app[CLIENT].post(
            subscriber.url, data=body, headers=headers, allow_redirects=False
        ) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _Retry(f"subscriber unreachable: {type(exc).__name__}") from None
    if 200 <= status < 300:
        return
    # A subscriber that refuses keeps its queue waiting (in order) rather than losing an event.
    raise _Retry(f"subscriber answered {status}")


async def _deliver_push(app: web.Application, payload: dict[str, Any]) -> None:
    try:
        status, body = await app[RC_LOGIN].call(
            "PATCH", events.EVENT_PATH, {"records": payload["records"]}
        )
    except LoginUnavailable as exc:
        raise _GiveUp(str(exc)) from None
    except (UpstreamUnreachable, UpstreamTimeout) as exc:
        raise _Retry(str(exc)) from None
    if 200 <= status < 300:
        return
    if status == 429 or status >= 500:
        raise _Retry(f"RingCentral answered {status}")
    raise _GiveUp(f"RingCentral refused the consent push ({status}): {body[:200]!r}")


_AT_MOST_ONCE = frozenset({RINGCENTRAL_REPLY})
"""Kinds whose repeat would reach a person (a second confirmation text)."""

_DELIVERERS = {
    RINGCENTRAL_REPLY: _deliver_reply,
    FORWARD: _deliver_forward,
    events.CONSENT_EVENT: _deliver_event,
    events.RINGCENTRAL_PUSH: _deliver_push,
}


KINDS = tuple(_DELIVERERS)
"""Every outbox kind (the ``kind`` label of the outbox metrics)."""


async def deliver(app: web.Application, entry: OutboxEntry) -> None:
    store = app[INDEX].store
    metrics = app[METRICS]
    now_us = time.time_ns() // 1000
    if entry.deadline_us is not None and now_us > entry.deadline_us:
        await store.outbox_give_up(entry.id, "window passed")
        metrics.outbox_given_up.labels(entry.kind).inc()
        log.error(
            "outbox entry given up: window passed",
            extra={"event": "outbox-given-up", "kind": entry.kind, "entry": entry.id},
        )
        return
    payload = json.loads(entry.payload)
    try:
        if entry.kind in _AT_MOST_ONCE:
            # A worker that died during the call may have sent it: look before sending again.
            if entry.in_flight and await _already_sent(app, entry, payload):
                await store.outbox_done(entry.id)
                metrics.outbox_delivered.labels(entry.kind).inc()
                return
            await store.outbox_begin(entry.id)
        deliverer = _DELIVERERS.get(entry.kind)
        if deliverer is None:
            raise _GiveUp(f"unknown outbox kind {entry.kind!r}")
        await deliverer(app, payload)
    except _Retry as exc:
        await store.outbox_retry(entry.id, now_us + int(_backoff(entry) * 1e6), str(exc))
        log.warning(
            "outbox entry will retry",
            extra={
                "event": "outbox-retry",
                "kind": entry.kind,
                "entry": entry.id,
                "error": str(exc),
            },
        )
        return
    except _GiveUp as exc:
        await store.outbox_give_up(entry.id, str(exc))
        metrics.outbox_given_up.labels(entry.kind).inc()
        log.error(
            "outbox entry given up",
            extra={
                "event": "outbox-given-up",
                "kind": entry.kind,
                "entry": entry.id,
                "error": str(exc),
            },
        )
        return
    await store.outbox_done(entry.id)
    metrics.outbox_delivered.labels(entry.kind).inc()


class _Heartbeat:
    """Beats at most once a second: each beat is a durable write."""

    last_us = 0

    async def __call__(self, store: ConsentStore, now_us: int) -> None:
        if now_us - self.last_us >= _HEARTBEAT_US:
            await store.outbox_heartbeat(WORKER_ID, now_us)
            self.last_us = now_us


_heartbeat = _Heartbeat()


async def run_once(app: web.Application) -> int:
    """Drain the spool if needed, then deliver what is due; returns entries handled."""
    spool = app[SPOOL]
    index = app[INDEX]
    if spool.pending():
        drained = await spool.drain(index.store, events.follow_up_for(app[SETTINGS]))
        index.clear_pending()
        log.info("spool drained: %d inbound events replayed into the store", drained)
    now_us = time.time_ns() // 1000
    await _heartbeat(index.store, now_us)
    entries = await index.store.claim_outbox(now_us, _BATCH, _LEASE_US, WORKER_ID, _STALE_US)
    for entry in entries:
        await deliver(app, entry)
    return len(entries)


async def _run(app: web.Application) -> None:
    wake = app[OUTBOX_WAKE]
    while True:
        handled = 0
        try:
            handled = await run_once(app)
        except StoreUnavailable:
            pass
        except Exception:  # a bug in one delivery must not stop every later one
            log.exception("outbox worker error", extra={"event": "error"})
        if handled < _BATCH:
            idle = _SPOOL_RETRY_SECONDS if app[SPOOL].pending() else _IDLE_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), idle)
            wake.clear()


SAMPLE_SECONDS = 5.0
"""How often the store is checked and the outbox backlog measured for the metrics."""


async def sample(app: web.Application) -> None:
    """Set ``stopgate_store_up`` and the outbox backlog gauges from the store, now."""
    store = app[INDEX].store
    metrics = app[METRICS]
    try:
        await store.ping()
        pending, oldest_us = await store.outbox_stats(time.time_ns() // 1000)
    except StoreUnavailable:
        metrics.store_up.set(0)
        return
    metrics.store_up.set(1)
    metrics.outbox_pending.set(pending)
    metrics.outbox_oldest_age.set(0 if oldest_us is None else max(oldest_us, 0) / 1e6)


async def _sample_forever(app: web.Application) -> None:
    # A task of its own, not a step of the delivery loop: a delivery that hangs is exactly
    # when the backlog must still be measured.
    while True:
        try:
            await sample(app)
        except Exception:
            log.exception("outbox sampling error", extra={"event": "error"})
        await asyncio.sleep(SAMPLE_SECONDS)


async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(_run(app), name="stopgate-outbox"),
        asyncio.create_task(_sample_forever(app), name="stopgate-outbox-sampler"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
