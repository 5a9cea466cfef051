"""Stopgate's own RingCentral login (JWT grant), for confirmations and subscriptions.

Needs ``STOPGATE_RINGCENTRAL_CLIENT_ID``, ``…_CLIENT_SECRET`` and ``…_JWT``. The access token is
kept in memory, refreshed with the refresh token before it expires, and obtained again with the
JWT when the refresh token is gone or refused.

The API calls (:meth:`RingCentralLogin.call`: a STOP's confirmation, a consent push, a
subscription) go through a lean client (:mod:`gateway.upstream_lean`), as sends do: through
aiohttp's client, a confirmation cost about a seventh of its STOP's instructions.
The token grants stay on aiohttp's client (one an hour).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDict

from gateway import upstream
from gateway.config import Settings
from gateway.errors import StopgateError, UpstreamConnectFailed, UpstreamUnreachable
from gateway.upstream_lean import LeanClient

_EARLY_SECONDS = 60.0
_JSON = b"application/json"
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class LoginUnavailable(StopgateError):
    """Stopgate has no RingCentral login configured, or RingCentral refused it."""


@dataclass(slots=True)
class _Tokens:
    access: str
    access_expires: float
    refresh: str | None
    refresh_expires: float


class RingCentralLogin:
    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession, lean: LeanClient
    ) -> None:
        self._settings = settings
        self._session = session
        self._lean = lean
        self._tokens: _Tokens | None = None
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        s = self._settings
        return bool(s.ringcentral_client_id and s.ringcentral_client_secret and s.ringcentral_jwt)

    async def token(self) -> str:
        async with self._lock:
            now = time.monotonic()
            tokens = self._tokens
            if tokens is not None and now < tokens.access_expires - _EARLY_SECONDS:
                return tokens.access
            if tokens is not None and tokens.refresh and now < tokens.refresh_expires:
                try:
                    self._tokens = await self._grant(
                        {"grant_type": "refresh_token", "refresh_token": tokens.refresh}
                    )
                    return self._tokens.access
                except LoginUnavailable:
                    self._tokens = None
            jwt = self._settings.ringcentral_jwt
            if not self.configured or jwt is None:
                raise LoginUnavailable("no RingCentral login configured (client id, secret, JWT)")
            self._tokens = await self._grant(
                {
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": jwt.reveal(),
                }
            )
            return self._tokens.access

    async def _grant(self, form: dict[str, str]) -> _Tokens:
        settings = self._settings
        secret = settings.ringcentral_client_secret
        client = f"{settings.ringcentral_client_id}:{secret.reveal() if secret else ''}"
        headers: CIMultiDict[str] = CIMultiDict(
            {
                "Authorization": "Basic " + base64.b64encode(client.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            }
        )
        response = await upstream.request(
            self._session,
            "POST",
            upstream.upstream_url(settings.ringcentral_upstream, "/restapi/oauth/token"),
            headers=headers,
            data=urlencode(form).encode(),
        )
        async with response:
            body = await upstream.read_body(response)
        if response.status != 200:
            raise LoginUnavailable(f"RingCentral refused Stopgate's login ({response.status})")
        reply: dict[str, Any] = json.loads(body)
        now = time.monotonic()
        return _Tokens(
            access=str(reply["access_token"]),
            access_expires=now + float(reply.get("expires_in", 3600)),
            refresh=reply.get("refresh_token"),
            refresh_expires=now + float(reply.get("refresh_token_expires_in", 0)),
        )

    async def call(self, method: str, path: str, document: Any = None) -> tuple[int, bytes]:
        """An authenticated JSON call to the RingCentral API; (status, body). A failure raises
        the upstream errors of :mod:`gateway.errors`, as a send's does. Only an idempotent call
        that lost its connection after leaving is asked again, once."""
        token = await self.token()
        url = upstream.upstream_url(self._settings.ringcentral_upstream, path)
        data = b"" if document is None else json.dumps(document).encode()
        raw = [(b"Authorization", f"Bearer {token}".encode()), (b"Accept", _JSON)]
        if document is not None:
            raw.append((b"Content-Type", _JSON))
        try:
            reply = await self._lean.request(method, url, headers=raw, body=data)
        except UpstreamConnectFailed:
            raise  # no connection at all: asking again at once would meet the same
        except UpstreamUnreachable:
            if method not in _IDEMPOTENT:
                raise
            # A kept-alive connection the carrier closed as the request left: asking again
            # is harmless for these methods (aiohttp's client does the same).
            reply = await self._lean.request(method, url, headers=raw, body=data)
        if reply.status == 401:
            self._tokens = None
        return reply.status, reply.body
