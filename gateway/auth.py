"""Who may call Stopgate's own API (consents, admin): bearer tokens with a role.

* ``admin`` reads and writes; ``auditor`` reads and exports.
* Tokens: the plaintext ``STOPGATE_ADMIN_TOKEN`` (admin), and any number of ``[[tokens]]`` in the
  config file given as SHA-256 hex digests with a role and a name - several valid at once, so a
  token is rotated by adding the new one before removing the old.
* A RingCentral bearer token is accepted too (role admin) when the carrier says it belongs to the
  configured account (``GET /restapi/v1.0/account/~``), so an unmodified RingCentral SDK can call
  the consents API. The answer is cached for ``credential_cache_seconds``.

Missing or unknown credentials -> 401; a valid token without the role -> 403. Every comparison is
constant-time, and no token is ever logged (only its configured name).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from cachetools import TTLCache
from multidict import CIMultiDict

from gateway import upstream
from gateway.config import Settings, same_secret
from gateway.errors import BadRequest, UpstreamError


class Role(enum.StrEnum):
    ADMIN = "admin"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    """How the caller appears in history (``actor``): never the token itself."""
    role: Role

    def require(self, role: Role) -> None:
        if role is Role.ADMIN and self.role is not Role.ADMIN:
            raise BadRequest("forbidden", f"the {self.role.value} role cannot do this", status=403)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Authenticator:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession | None) -> None:
        self._settings = settings
        self._session = session
        self._carrier: TTLCache[str, Principal] = TTLCache(
            maxsize=10_000, ttl=settings.credential_cache_seconds
        )

    def _configured(self, presented: str) -> Principal | None:
        digest = _digest(presented)
        found: Principal | None = None
        admin = self._settings.admin_token
        if admin is not None and hmac.compare_digest(
            digest.encode(), _digest(admin.reveal()).encode()
        ):
            found = Principal("admin-token", Role.ADMIN)
        for spec in self._settings.tokens:
            # Every configured token is compared, so timing does not tell which one matched.
            if hmac.compare_digest(digest.encode(), spec.sha256.encode()) and found is None:
                found = Principal(f"token:{spec.name}", Role(spec.role))
        return found

    async def authenticate(self, request: web.Request) -> Principal:
        scheme, _, presented = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise BadRequest("unauthorized", "a bearer token is required", status=401)
        return await self.authenticate_token(presented)

    async def authenticate_token(self, presented: str) -> Principal:
        """The principal of a bearer token given directly (the console's sign-in form)."""
        if not presented:
            raise BadRequest("unauthorized", "a bearer token is required", status=401)
        principal = self._configured(presented)
        if principal is not None:
            return principal
        principal = await self._ringcentral(presented)
        if principal is None:
            raise BadRequest("unauthorized", "the bearer token is not valid here", status=401)
        return principal

    async def _ringcentral(self, token: str) -> Principal | None:
        account = self._settings.ringcentral_account_id
        if account is None or self._session is None:
            return None
        key = _digest(token)
        cached = self._carrier.get(key)
        if cached is not None:
            return cached
        headers: CIMultiDict[str] = CIMultiDict(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        try:
            response = await upstream.request(
                self._session,
                "GET",
                upstream.upstream_url(
                    self._settings.ringcentral_upstream, "/restapi/v1.0/account/~"
                ),
                headers=headers,
            )
            async with response:
                body = await upstream.read_body(response)
        except UpstreamError:
            raise BadRequest(
                "carrier-unreachable",
                "RingCentral could not confirm the token right now",
                status=503,
            ) from None
        if response.status != 200:
            return None
        try:
            owner = str(json.loads(body).get("id"))
        except (ValueError, AttributeError):
            return None
        if not same_secret(owner, account):
            return None
        principal = Principal(f"ringcentral:{owner}", Role.ADMIN)
        self._carrier[key] = principal
        return principal
