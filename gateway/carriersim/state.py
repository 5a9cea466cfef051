"""Shared state of one carrier simulator instance: credentials, tokens, deliveries, faults.

Nothing here knows HTTP; the route modules read and write it through the app key
``SIM_STATE``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from aiohttp import web

Provider = Literal["ringcentral", "twilio"]
FaultMode = Literal["none", "5xx", "slow", "timeout", "reset", "half-body"]
FAULT_MODES: tuple[str, ...] = get_args(FaultMode)


@dataclass(frozen=True)
class SimCredentials:
    """The one account of each carrier that the simulator knows.

    The defaults are what the tests and the README demo use. The Twilio values only look
    like real ones (``AC``/``SK`` + 32 hex digits); ``twilio_api_key_sid`` with
    ``twilio_api_key_secret`` is an API key of the same account (Basic auth ``SK…:secret``).
    ``rc_username`` may be given with or without ``+``; ``rc_extension_number`` is the
    optional ``extension`` field of the password grant. None of these is a secret: they
    are fixed, published values of a fake carrier.
    """

    rc_client_id: str = "sim-client-id"
    rc_client_secret: str = "sim-client-secret"  # noqa: S105 (public simulator value)
    rc_jwt: str = "sim-jwt-assertion"
    rc_username: str = "+16505550100"
    rc_password: str = "sim-password"  # noqa: S105 (public simulator value)
    rc_extension_number: str = "101"
    rc_account_id: str = "400000001"
    rc_extension_id: str = "400000101"
    twilio_account_sid: str = "AC5709a7e55709a7e55709a7e55709a7e5"
    twilio_auth_token: str = "7d3c1b5e9f2a4c6e8b0d1f3a5c7e9b2d"  # noqa: S105 (public simulator value)
    twilio_api_key_sid: str = "SK5709a7e55709a7e55709a7e55709a7e5"
    twilio_api_key_secret: str = "sim-api-key-secret"  # noqa: S105 (public simulator value)
    # Put on RingCentral notifications (``Verification-Token``) when no subscription says
    # otherwise, as RingCentral does for a subscription created with a verificationToken.
    rc_verification_token: str = "sim-verification-token"  # noqa: S105 (public simulator value)


@dataclass
class RcSession:
    """One RingCentral login: the live access/refresh token pair and their expiry times."""

    client_id: str
    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float
    scope: str
    endpoint_id: str


@dataclass(frozen=True)
class Delivered:
    """One message handed to one recipient (a send to N recipients yields N entries)."""

    id: str
    provider: Provider
    api: str
    message_id: str
    from_: str | None
    to: str
    text: str
    received_at: str
    media: tuple[str, ...] = ()
    messaging_service_sid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "api": self.api,
            "message_id": self.message_id,
            "from": self.from_,
            "to": self.to,
            "text": self.text,
            "media": list(self.media),
            "messaging_service_sid": self.messaging_service_sid,
            "received_at": self.received_at,
        }


@dataclass
class RcSubscription:
    """One RingCentral WebHook subscription (``/restapi/v1.0/subscription``).

    ``expires_in`` is the lifetime asked for (reused by a renewal); ``expires_at`` is
    wall-clock seconds, compared against ``now_seconds()``.
    """

    id: str
    event_filters: list[str]
    address: str
    verification_token: str | None
    expires_in: int
    created_at: datetime
    expires_at: float

    def active(self, now: float) -> bool:
        return self.expires_at > now

    def renew(self, now: float, expires_in: int | None = None) -> None:
        if expires_in is not None:
            self.expires_in = expires_in
        self.expires_at = now + self.expires_in


@dataclass
class FaultPlan:
    """The failure the carrier routes show next.

    ``remaining`` counts the requests still to be hit; ``None`` means until replaced.
    """

    mode: FaultMode = "none"
    delay_seconds: float | None = None
    remaining: int | None = None
    status: int = 503

    def take(self) -> FaultPlan | None:
        """Consume one request's worth of the plan; the fault to apply, or None."""
        if self.mode == "none":
            return None
        if self.remaining is not None:
            if self.remaining <= 0:
                self.mode, self.remaining, self.delay_seconds = "none", None, None
                return None
            self.remaining -= 1
        applied = FaultPlan(self.mode, self.delay_seconds, self.remaining, self.status)
        if self.remaining == 0:
            self.mode, self.remaining, self.delay_seconds = "none", None, None
        return applied

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "delay_seconds": self.delay_seconds,
            "count": self.remaining,
            "status": self.status,
        }


@dataclass
class SimState:
    credentials: SimCredentials
    gateway_url: str | None = None
    delivered: list[Delivered] = field(default_factory=list)
    rc_by_access: dict[str, RcSession] = field(default_factory=dict)
    rc_by_refresh: dict[str, RcSession] = field(default_factory=dict)
    rc_messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    rc_batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    rc_conversations: dict[tuple[str, str], int] = field(default_factory=dict)
    twilio_messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Recipients who texted STOP to the carrier itself (digits only): sends to them fail.
    carrier_opt_outs: set[str] = field(default_factory=set)
    # RingCentral's consent list, keyed by (from, to) as the API was given them.
    rc_consents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # In creation order (dicts keep it): the newest matching subscription is the last.
    rc_subscriptions: dict[str, RcSubscription] = field(default_factory=dict)
    # The subscriptionId of notifications sent without a subscription (to gateway_url).
    rc_default_subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    faults: FaultPlan = field(default_factory=FaultPlan)
    # Set when the app shuts down, so parked "slow"/"timeout" handlers let go at once
    # instead of holding the runner's graceful shutdown for its whole timeout.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _delivery_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _rc_message_ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(2_104_000_001)
    )

    def next_rc_message_id(self) -> int:
        return next(self._rc_message_ids)

    def rc_conversation_id(self, from_: str, to: str) -> int:
        key = (from_, to)
        if key not in self.rc_conversations:
            self.rc_conversations[key] = 5_578_984_350_117_000_000 + len(self.rc_conversations)
        return self.rc_conversations[key]

    def deliver(
        self,
        *,
        provider: Provider,
        api: str,
        message_id: str,
        from_: str | None,
        to: str,
        text: str,
        media: tuple[str, ...] = (),
        messaging_service_sid: str | None = None,
    ) -> Delivered:
        entry = Delivered(
            id=f"sim-{next(self._delivery_ids)}",
            provider=provider,
            api=api,
            message_id=message_id,
            from_=from_,
            to=to,
            text=text,
            received_at=iso_millis(utcnow()),
            media=media,
            messaging_service_sid=messaging_service_sid,
        )
        self.delivered.append(entry)
        return entry

    def rc_session(self, access_token: str) -> RcSession | None:
        return self.rc_by_access.get(access_token)

    def drop_rc_session(self, session: RcSession) -> None:
        self.rc_by_access.pop(session.access_token, None)
        self.rc_by_refresh.pop(session.refresh_token, None)


SIM_STATE = web.AppKey("carriersim.state", SimState)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_millis(moment: datetime) -> str:
    """RingCentral's timestamp form, e.g. ``2024-05-01T12:00:00.123Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_seconds() -> float:
    """Wall-clock seconds; token lifetimes are compared against it."""
    return time.time()


def new_uuid() -> str:
    return str(uuid.uuid4())
