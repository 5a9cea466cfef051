"""The RingCentral webhook subscription that points inbound SMS events at Stopgate.

``stopgate ringcentral subscribe`` creates it (RingCentral first checks the address with its
validation handshake, so the gateway must be up and reachable at ``STOPGATE_PUBLIC_URL``), and
records it in the store. Every gateway on that store then renews it before it expires; one that
RingCentral no longer knows is created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config import Settings
from gateway.errors import ConfigError, StopgateError, StoreUnavailable, UpstreamError
from gateway.keys import INDEX, RC_LOGIN, SETTINGS
from gateway.ringcentral_login import LoginUnavailable, RingCentralLogin
from gateway.store.base import ConsentStore

log = logging.getLogger("stopgate.subscription")

SMS_EVENTS = ["/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS"]
STORED_AS = "ringcentral.subscription"
_CHECK_SECONDS = 60.0


class SubscriptionError(StopgateError):
    pass


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    address: str
    expires_at: float
    """Unix time."""
    expires_in: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "address": self.address,
                "expires_at": self.expires_at,
                "expires_in": self.expires_in,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Subscription:
        raw = json.loads(text)
        return cls(
            str(raw["id"]), str(raw["address"]), float(raw["expires_at"]), int(raw["expires_in"])
        )

    def due(self, now: float) -> bool:
        """Renew once less than a fifth of its lifetime is left (at least 2 checks ahead)."""
        margin = max(self.expires_in / 5, 2 * _CHECK_SECONDS)
        return now >= self.expires_at - margin


def webhook_address(settings: Settings) -> str:
    if not settings.public_url:
        raise ConfigError("STOPGATE_PUBLIC_URL is needed: it is the address RingCentral calls")
    return settings.public_url.rstrip("/") + "/webhooks/ringcentral"


def _record(reply: dict[str, Any], address: str, asked: int) -> Subscription:
    expires_in = int(reply.get("expiresIn") or asked)
    return Subscription(str(reply["id"]), address, time.time() + expires_in, asked)


async def create(login: RingCentralLogin, settings: Settings, store: ConsentStore) -> Subscription:
    address = webhook_address(settings)
    token = settings.ringcentral_verification_token
    if token is None:
        raise ConfigError("STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN is needed to verify events")
    asked = settings.ringcentral_webhook_expires_in
    status, body = await login.call(
        "POST",
        "/restapi/v1.0/subscription",
        {
            "eventFilters": SMS_EVENTS,
            "deliveryMode": {
                "transportType": "WebHook",
                "address": address,
                "verificationToken": token.reveal(),
            },
            "expiresIn": asked,
        },
    )
    if status != 200:
        raise SubscriptionError(f"RingCentral refused the subscription ({status}): {body[:300]!r}")
    subscription = _record(json.loads(body), address, asked)
    await store.set_value(STORED_AS, subscription.to_json())
    return subscription


async def renew(
    login: RingCentralLogin, settings: Settings, store: ConsentStore, current: Subscription
) -> Subscription:
    status, body = await login.call("POST", f"/restapi/v1.0/subscription/{current.id}/renew")
    if status == 404:
        log.warning("subscription %s is gone at RingCentral; creating a new one", current.id)
        return await create(login, settings, store)
    if status != 200:
        raise SubscriptionError(f"renewal refused ({status}): {body[:300]!r}")
    renewed = _record(json.loads(body), current.address, current.expires_in)
    await store.set_value(STORED_AS, renewed.to_json())
    return renewed


async def renew_if_due(
    login: RingCentralLogin, settings: Settings, store: ConsentStore
) -> Subscription | None:
    """Renew the recorded subscription when it is due; None when there is none."""
    text = await store.get_value(STORED_AS)
    if text is None:
        return None
    current = Subscription.from_json(text)
    if not current.due(time.time()):
        return current
    renewed = await renew(login, settings, store, current)
    log.info("subscription %s renewed until %s", renewed.id, time.ctime(renewed.expires_at))
    return renewed


async def _keep_renewed(app: web.Application) -> None:
    while True:
        try:
            await renew_if_due(app[RC_LOGIN], app[SETTINGS], app[INDEX].store)
        except (StoreUnavailable, UpstreamError, LoginUnavailable, SubscriptionError) as exc:
            log.error("subscription renewal failed, will retry: %s", exc)
        except Exception:
            log.exception("subscription renewal error")
        await asyncio.sleep(_CHECK_SECONDS)


async def renewal_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_keep_renewed(app), name="stopgate-subscription")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
