"""Consent change events for subscribers, and pushes of Stopgate's changes to RingCentral.

Every consent change that applies - from the API, a recipient's keyword, an import or the
carrier - is queued, in the same transaction as the change, as one RingCentral-style event per
subscriber::

    {"uuid": ..., "event": "/restapi/v2/accounts/~/sms/consents", "timestamp": ...,
     "body": {"records": [{from, to, optStatus, source, lastModifiedTime}, ...]}}

A batch of changes (an import, a PATCH) is one event per subscriber, not one per row. Each
subscriber's events form one ordered queue (so, in particular, in order per pair), delivered at
least once with backoff, and signed: ``X-Stopgate-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256(secret, "<t>.<raw body>")>`` (and a second ``v1=`` made with ``previous_secret``
while a subscriber's secret is rotated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from gateway.config import Settings
from gateway.store.base import AppliedChange, FollowUp, OutboxItem
from policy.consent import Source, format_time
from policy.numbers import WILDCARD, display_key

CONSENT_EVENT = "consent-event"
RINGCENTRAL_PUSH = "ringcentral-consent-push"
EVENT_PATH = "/restapi/v2/accounts/~/sms/consents"
SIGNATURE_HEADER = "X-Stopgate-Signature"


def _record(applied: AppliedChange) -> dict[str, Any]:
    record = applied.record
    return {
        "from": display_key(record.from_key),
        "to": display_key(record.to_key),
        "optStatus": record.status.value,
        "source": record.source.value,
        "lastModifiedTime": format_time(record.modified_us),
    }


def signature(secret: str, timestamp: int, body: bytes, *also: str) -> str:
    """``t=<timestamp>,v1=<digest>``; with ``also`` (secrets being rotated out) one more
    ``v1=`` per secret, so a receiver holding any one of them can verify."""
    signed = f"{timestamp}.".encode() + body
    digests = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in (secret, *also)]
    return f"t={timestamp}," + ",".join(f"v1={d}" for d in digests)


def follow_up_for(settings: Settings) -> FollowUp | None:
    """The follow-up that queues events (and RingCentral pushes) for applied changes; None
    when nothing is configured to receive them."""
    if not settings.subscribers and not settings.ringcentral_consent_push:
        return None

    def follow_up(applied: Sequence[AppliedChange]) -> list[OutboxItem]:
        if not applied:
            return []
        now_us = time.time_ns() // 1000
        records = [_record(a) for a in applied]
        items: list[OutboxItem] = []
        for subscriber in settings.subscribers:
            document = {
                "uuid": str(uuid.uuid4()),
                "event": EVENT_PATH,
                "timestamp": format_time(now_us)[:-4] + "Z",
                "body": {"records": records},
            }
            items.append(
                OutboxItem(
                    CONSENT_EVENT,
                    json.dumps({"subscriber": subscriber.name, "event": document}),
                    not_before_us=now_us,
                    deadline_us=now_us + int(settings.event_window * 1e6),
                    ordering_key=f"subscriber:{subscriber.name}",
                )
            )
        if settings.ringcentral_consent_push:
            # What came from the carrier is not echoed back to it; pairs are numbers only.
            own = [
                r
                for a, r in zip(applied, records, strict=True)
                if a.record.source is not Source.CARRIER
                and (a.record.from_key == WILDCARD or a.record.from_key.startswith("+"))
                and a.record.to_key.startswith("+")
            ]
            if own:
                items.append(
                    OutboxItem(
                        RINGCENTRAL_PUSH,
                        json.dumps({"records": own}),
                        not_before_us=now_us,
                        deadline_us=now_us + int(settings.event_window * 1e6),
                        ordering_key="ringcentral-consent-push",
                    )
                )
        return items

    return follow_up
