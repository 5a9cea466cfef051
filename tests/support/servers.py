"""Run aiohttp apps for tests in a thread of their own, and wait for servers in subprocesses.

The official carrier SDKs are synchronous (``requests``): called from a test running on the
same event loop as the server they talk to, they would block that loop and deadlock. A
``ServerThread`` gives the server its own loop in a background thread, so sync SDKs, async
clients on the test's loop, and subprocesses can all reach it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

AppSource = web.Application | Callable[[], web.Application | Awaitable[web.Application]]
T = TypeVar("T")


class ServerThread:
    """Serve an ``aiohttp.web.Application`` on ``host`` (an ephemeral port by default).

    ``app`` is an application or a factory for one (sync or async); a factory runs on the
    server's loop, which is what an app that creates loop-bound objects at build time needs.
    Use as a context manager (or ``start()``/``stop()``); ``url`` is e.g.
    ``http://127.0.0.1:41234``. Exit runs the runner's full cleanup (``on_shutdown``,
    ``on_cleanup``) and re-raises anything that failed in the server thread.
    """

    def __init__(
        self,
        app: AppSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 5.0,
        start_timeout: float = 10.0,
    ) -> None:
        self._source = app
        self._host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._port: int | None = None
        self._app: web.Application | None = None

    # -- public --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def app(self) -> web.Application:
        """The application being served (built by then, if a factory was given)."""
        if self._app is None:
            raise RuntimeError("the server is not running")
        return self._app

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the server is not running")
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        """Run ``coro`` on the server's loop and wait for its result (from another thread)."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("ServerThread is single-use")
        self._thread = threading.Thread(
            target=self._run, name=f"ServerThread-{self._host}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError(f"server did not start within {self._start_timeout} s")
        if self._error is not None:
            self._thread.join(self._start_timeout)
            raise RuntimeError("the server failed to start") from self._error
        return self

    def stop(self) -> None:
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            # The loop may close between the check and the call if the thread died.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(self._shutdown_timeout + 10.0)
        if thread.is_alive():
            raise TimeoutError("the server thread did not stop")
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("the server thread failed") from error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        except Exception as stop_error:
            if exc is None:
                raise
            # The test's own failure is the one to show; the server's rides along as a note.
            exc.add_note(f"ServerThread.stop() also failed: {stop_error!r}")

    # -- thread side ---------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # handed to the test's thread by start()/stop()
            self._error = exc
        finally:
            self._ready.set()
            try:
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    async def _build(self) -> web.Application:
        if isinstance(self._source, web.Application):
            return self._source
        built = self._source()
        if inspect.isawaitable(built):
            return await built
        return built

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        self._app = await self._build()
        runner = web.AppRunner(
            self._app, shutdown_timeout=self._shutdown_timeout, handle_signals=False
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
            self._port = _bound_port(runner)
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError(f"no TCP address among {runner.addresses!r}")


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for servers started in a subprocess).

    Inherently racy: another process may take it before the subprocess binds. Prefer
    ``ServerThread`` (port 0, no race) when the server can run in-process.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 10.0, *, interval: float = 0.05) -> int:
    """Poll ``url`` with GET until any HTTP answer arrives; return its status code.

    Any status counts (a 404 or 503 still proves the server is listening). Raises
    ``TimeoutError`` with the last connection error when nothing answers within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(interval, 1.0)) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response open; unclosed it warns at collection
            return exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no HTTP answer from {url} within {timeout} s: {last_error!r}")
        time.sleep(interval)
