"""Typed application state keys. Each resource is put in place by its own cleanup context."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.auth import Authenticator
from gateway.blocked_log import BlockedLog
from gateway.clock import Clock
from gateway.config import Settings
from gateway.consent_index import ConsentIndex, FeedState
from gateway.credentials import CredentialChecker
from gateway.dialects.base import Dialect
from gateway.keyword_policy import KeywordPolicy
from gateway.metrics import Metrics
from gateway.ratelimit import FailureLimiter
from gateway.ringcentral_login import RingCentralLogin
from gateway.spool import Spool
from gateway.store.base import ConsentStore
from gateway.upstream_lean import LeanClient

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DIALECTS = web.AppKey("dialects", tuple[Dialect, ...])
STORE = web.AppKey("store", ConsentStore)
INDEX = web.AppKey("consent_index", ConsentIndex)
CLIENT = web.AppKey("client_session", aiohttp.ClientSession)
CREDENTIALS = web.AppKey("credentials", CredentialChecker)
SPOOL = web.AppKey("spool", Spool)
AUTH = web.AppKey("auth", Authenticator)
PAGE_KEY = web.AppKey("page_token_key", bytes)
ERASURE_KEY = web.AppKey("erasure_key", bytes)
RC_LOGIN = web.AppKey("ringcentral_login", RingCentralLogin)
OUTBOX_WAKE = web.AppKey("outbox_wake", asyncio.Event)
KEYWORDS = web.AppKey("keywords", KeywordPolicy)
FEED = web.AppKey("change_feed", FeedState)
BLOCKED_LOG = web.AppKey("blocked_log", BlockedLog)
CLOCK = web.AppKey("clock", Clock)
SIGN_IN_LIMITER = web.AppKey("sign_in_limiter", FailureLimiter)
SEND_CLIENT = web.AppKey("send_client", LeanClient)
