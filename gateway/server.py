"""The gateway's listening server: aiohttp's ``web.Server`` and ``web.AppRunner`` with the front
(:mod:`gateway.front`) in front of them, and :func:`serve`, which runs one until a signal.

Kept apart from :mod:`gateway.front` because these subclass aiohttp's classes, which the
compiled front (:mod:`gateway.native`) cannot; they run once per connection, not per request.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Final

from aiohttp import web

from gateway.front import FrontProtocol

log = logging.getLogger("stopgate.front")


class FrontServer(web.Server):
    """The listening socket's protocol factory: a :class:`FrontProtocol` per connection, and
    aiohttp's ``RequestHandler`` (of the server this wraps) for each connection handed over."""

    def __init__(self, plain: web.Server, app: web.Application) -> None:
        super().__init__(plain.request_handler, request_factory=plain.request_factory)
        self.plain = plain
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.fronts: set[FrontProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        """Sends being decided, their clients gone or not."""

    def __call__(self) -> Any:
        return FrontProtocol(self)

    def aiohttp_protocol(self) -> asyncio.Protocol:
        return self.plain()

    @property
    def connections(self) -> list[Any]:
        return [*self.plain.connections, *self.fronts]

    def pre_shutdown(self) -> None:
        self.plain.pre_shutdown()
        for front in list(self.fronts):
            front.close_when_idle()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (aiohttp's)
        pending = list(self.tasks)
        waiting = asyncio.wait(pending, timeout=timeout) if pending else asyncio.sleep(0)
        await asyncio.gather(self.plain.shutdown(timeout), waiting)
        if any(not task.done() for task in pending):
            log.warning("shutdown: sends still being decided after %s s; closing them", timeout)
        for front in list(self.fronts):
            front.abort()
        self.fronts.clear()


class FrontRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a :class:`FrontServer` (any site can use it)."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return FrontServer(plain, self.app)


SHUTDOWN_SECONDS: Final = 10.0
"""How long a stopping gateway lets requests in progress finish (``serve --workers`` gives its
children as long before it kills them)."""


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve ``app`` on ``host:port`` through the front until SIGTERM or SIGINT, then stop
    gracefully: no new connections, idle ones closed, requests in progress finished."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = FrontRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        await stop.wait()
        log.info("stopgate stopping")
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
