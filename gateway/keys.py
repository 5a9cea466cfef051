"""Typed application state keys. Each resource is put in place by its own cleanup context."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.config import Settings
from gateway.consent_index import ConsentIndex
from gateway.credentials import CredentialChecker
from gateway.dialects.base import Dialect
from gateway.metrics import Metrics
from gateway.store.base import ConsentStore

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DIALECTS = web.AppKey("dialects", tuple[Dialect, ...])
STORE = web.AppKey("store", ConsentStore)
INDEX = web.AppKey("consent_index", ConsentIndex)
CLIENT = web.AppKey("client_session", aiohttp.ClientSession)
CREDENTIALS = web.AppKey("credentials", CredentialChecker)
