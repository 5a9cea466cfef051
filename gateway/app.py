"""``create_app(settings)``: the one place the gateway is assembled."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import admin, consents_api, inbound, limits, openapi, outbox, upstream
from gateway.auth import Authenticator
from gateway.blocked_log import BlockedLog
from gateway.change_feed import change_feed_ctx
from gateway.clock import Clock
from gateway.config import Settings
from gateway.consent_index import ConsentIndex, FeedState
from gateway.credentials import CredentialChecker
from gateway.dialects import DIALECTS
from gateway.erasure import retention_ctx
from gateway.errors import StoreUnavailable
from gateway.keys import (
    AUTH,
    BLOCKED_LOG,
    CLIENT,
    CLOCK,
    CREDENTIALS,
    ERASURE_KEY,
    FEED,
    INDEX,
    KEYWORDS,
    METRICS,
    OUTBOX_WAKE,
    PAGE_KEY,
    RC_LOGIN,
    SEND_CLIENT,
    SETTINGS,
    SPOOL,
    STORE,
)
from gateway.keys import DIALECTS as DIALECTS_KEY
from gateway.keyword_policy import KeywordPolicy
from gateway.metrics import Metrics, observe_store
from gateway.outbox import outbox_ctx
from gateway.proxy import carrier_route
from gateway.ringcentral_login import RingCentralLogin
from gateway.spool import Spool
from gateway.store import store_from_url
from gateway.store.base import ConsentStore
from gateway.subscriptions import renewal_ctx
from gateway.upstream_lean import LeanClient

log = logging.getLogger("stopgate")

__version__ = "0.1.0"
# Names of the stored values that hold these keys (not the keys themselves).
PAGE_TOKEN_SETTING = "consents.page-token-key"  # noqa: S105
ERASURE_KEY_SETTING = "consents.erasure-key"


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Every store call is timed and counted (stopgate_store_*); see gateway.metrics.
    store = observe_store(store_from_url(settings.store), app[METRICS])
    await store.open()
    index = ConsentIndex(store, settings.cache_size)
    app[METRICS].index = index
    for service, numbers in settings.messaging_services.items():
        await store.set_service_numbers(service, numbers)
    index.services.update(await store.service_numbers())
    index.configure_brands(settings.brands, settings.consent_defaults)
    app[STORE] = store
    app[INDEX] = index
    app[BLOCKED_LOG] = BlockedLog(store)
    app[PAGE_KEY] = await _store_secret(store, PAGE_TOKEN_SETTING)
    app[ERASURE_KEY] = await _store_secret(store, ERASURE_KEY_SETTING)
    yield
    await store.close()


async def _store_secret(store: ConsentStore, name: str) -> bytes:
    """A key kept in the store, so every gateway sharing the store uses the same one."""
    existing = await store.get_value(name)
    if existing is None:
        await store.set_value(name, secrets.token_hex(32))
        existing = await store.get_value(name)
    return bytes.fromhex(existing or "")


async def client_ctx(app: web.Application) -> AsyncIterator[None]:
    session = upstream.make_client_session(app[SETTINGS])
    # Stopgate's own RingCentral API calls (a confirmation per STOP) on a lean client of their
    # own: not waiting behind sends for a connection, nor sends behind them.
    api_client = LeanClient(app[SETTINGS])
    app[CLIENT] = session
    app[CREDENTIALS] = CredentialChecker(app[SETTINGS], session)
    app[RC_LOGIN] = RingCentralLogin(app[SETTINGS], session, api_client)
    app[AUTH] = Authenticator(app[SETTINGS], session)
    yield
    await api_client.close()
    await session.close()


async def send_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The send path's own upstream client (gateway/upstream_lean.py)."""
    client = LeanClient(app[SETTINGS])
    app[SEND_CLIENT] = client
    yield
    await client.close()


async def spool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Changes spooled before a crash are honoured from the first request on."""
    spool = app[SPOOL]
    for event in await asyncio.to_thread(spool.load):
        app[INDEX].add_pending(event.records())
    yield


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers; a lost change feed is ``degraded`` (still ready: lookups
    then bypass the cache and read the store)."""
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        return web.json_response(
            {"status": "unready", "store": "unreachable", "detail": str(exc)}, status=503
        )
    feed = request.app[FEED]
    return web.json_response(
        {
            "status": "ready" if feed.healthy else "degraded",
            "store": "ok",
            "changeFeed": "ok" if feed.healthy else "lost",
        }
    )


async def metrics_route(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def create_app(
    settings: Settings, *, registry: CollectorRegistry | None = None, clock: Clock | None = None
) -> web.Application:
    """Build the gateway. Resources (store, upstream client) open in cleanup contexts."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        handler_args=limits.handler_args(settings),
        middlewares=[limits.body_deadline(settings.body_timeout)],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock if clock is not None else Clock()
    metrics = Metrics(registry)
    metrics.build.info({"version": __version__, "mode": settings.mode})
    metrics.prime([d.name for d in DIALECTS], outbox.KINDS)
    app[METRICS] = metrics
    app[DIALECTS_KEY] = DIALECTS
    app[KEYWORDS] = KeywordPolicy(settings.keywords, settings.keyword_mode, settings.default_region)
    app[SPOOL] = Spool(settings.spool_path)
    app[OUTBOX_WAKE] = asyncio.Event()
    app[FEED] = FeedState()
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(spool_ctx)
    app.cleanup_ctx.append(change_feed_ctx)
    app.cleanup_ctx.append(client_ctx)
    app.cleanup_ctx.append(send_client_ctx)
    app.cleanup_ctx.append(outbox_ctx)
    app.cleanup_ctx.append(renewal_ctx)
    app.cleanup_ctx.append(retention_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route)
    consents_api.add_routes(app)
    admin.add_routes(app)
    inbound.add_routes(app)
    openapi.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", carrier_route)
    return app
