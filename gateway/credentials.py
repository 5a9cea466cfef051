"""Carrier credentials on sends: a caller the carrier would refuse learns nothing about consent.

Before a consent decision is revealed, the caller's credentials must be ones the carrier
accepts (DESIGN §4.2). Twilio Basic auth ``AC…:token`` is accepted locally when the token is
the configured auth token; anything else - API keys, other accounts, RingCentral bearer tokens -
is checked once against the carrier and remembered for a while. A refusal from the carrier is
relayed to the caller exactly as the carrier gave it.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from cachetools import TTLCache
from multidict import CIMultiDict

from gateway import upstream
from gateway.config import Settings, matches_any, same_secret


@dataclass(frozen=True, slots=True)
class CarrierRefusal:
    """The carrier's own answer to a credential check, to relay unchanged."""

    status: int
    content_type: str
    body: bytes


def _fingerprint(authorization: str) -> str:
    # Cache keys are digests, so no credential sits in memory longer than the request.
    return hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).hexdigest()


def _basic_password(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    encoded = encoded.strip()
    # Not base64 at all (a header may hold any bytes): no user and password to check here.
    if scheme.lower() != "basic" or not encoded.isascii():
        return None
    try:
        decoded = binascii.a2b_base64(encoded, strict_mode=True)
        user, sep, password = decoded.decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class CredentialChecker:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._twilio_tokens = settings.twilio_auth_tokens()
        self._session = session
        self._accepted: TTLCache[str, bool] = TTLCache(
            maxsize=10_000, ttl=settings.credential_cache_seconds
        )

    async def check_twilio(self, authorization: str, account_sid: str) -> CarrierRefusal | None:
        """None when the carrier would accept these credentials for ``account_sid``."""
        tokens = self._twilio_tokens
        basic = _basic_password(authorization)
        if tokens and basic is not None:
            user, password = basic
            if (
                user.startswith("AC")
                and same_secret(user, account_sid)
                and matches_any(password, tokens)
            ):
                return None
        # A read of one message is allowed to every key that may send (standard API keys cannot
        # read the account resource itself), and costs the carrier next to nothing.
        path = f"/2010-04-01/Accounts/{quote(account_sid, safe='')}/Messages.json?PageSize=1"
        return await self._ask_carrier(
            self._settings.twilio_upstream, path, authorization, account_sid
        )

    def forget(self, authorization: str, scope: str = "") -> None:
        """Stop trusting a credential the carrier has just refused."""
        self._accepted.pop(_fingerprint(f"{scope}\n{authorization}"), None)

    def forget_all(self) -> None:
        """Trust nothing cached: a token was revoked or replaced through Stopgate."""
        self._accepted.clear()

    async def check_ringcentral(self, authorization: str) -> CarrierRefusal | None:
        """None when the carrier accepts this bearer token."""
        return await self._ask_carrier(
            self._settings.ringcentral_upstream,
            "/restapi/v1.0/account/~/extension/~",
            authorization,
            "",
        )

    async def _ask_carrier(
        self, base: str, path: str, authorization: str, scope: str
    ) -> CarrierRefusal | None:
        key = _fingerprint(f"{scope}\n{authorization}")
        if key in self._accepted:
            return None
        headers: CIMultiDict[str] = CIMultiDict({"Accept": "application/json"})
        if authorization:
            headers["Authorization"] = authorization
        response = await upstream.request(
            self._session, "GET", upstream.upstream_url(base, path), headers=headers
        )
        async with response:
            body = await upstream.read_body(response)
        if 200 <= response.status < 300:
            self._accepted[key] = True
            return None
        return CarrierRefusal(
            response.status, response.headers.get("Content-Type", "application/json"), body
        )
