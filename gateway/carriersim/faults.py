"""Fault injection for the carrier routes (every path outside ``/sim``).

What each mode does to one request:

- ``5xx``: answers ``status`` (503 unless set) in the owning carrier's error shape; the
  request is not processed.
- ``slow``: the request is processed, then the answer waits ``delay_seconds`` (default 1 s).
  A client that gives up meanwhile has still sent its message, as with a slow real carrier.
- ``timeout``: never answers and does not process; the connection is dropped after
  ``delay_seconds`` (default one hour), when the client goes away, or at shutdown.
- ``reset``: the connection is aborted with a TCP reset before anything is answered; not
  processed. Note that aiohttp's client resends an idempotent request (GET, PUT, DELETE…)
  once after a reset, so a GET through aiohttp only fails with ``count`` of 2 or more.
- ``half-body``: the request *is* processed; the answer is sent with its full
  ``Content-Length`` but only the first half of the body, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.carriersim.state import SIM_STATE, FaultPlan, SimState
from gateway.carriersim.wire import provider_of, route_error, server_error

SLOW_DEFAULT_SECONDS = 1.0
TIMEOUT_DEFAULT_SECONDS = 3600.0
_POLL_SECONDS = 0.05


def is_control_path(path: str) -> bool:
    return path == "/sim" or path.startswith("/sim/")


async def _park(request: web.Request, state: SimState, seconds: float) -> None:
    """Wait ``seconds``, but not past the client leaving or the app shutting down."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not state.stopping.is_set() and request.transport is not None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopping.wait(), timeout=min(remaining, _POLL_SECONDS))


def _abort(request: web.Request, *, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger on with a zero timeout: close() then sends RST instead of FIN.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _half_body(request: web.Request, full: web.StreamResponse) -> web.StreamResponse:
    body = full.body if isinstance(full, web.Response) else None
    if not isinstance(body, bytes) or len(body) < 2:
        body = b'{"sim": "half-body fault: this body is cut in two"}'
    partial = web.StreamResponse(status=full.status, reason=full.reason)
    partial.content_type = full.content_type
    partial.content_length = len(body)
    await partial.prepare(request)
    await partial.write(body[: len(body) // 2])
    if request.transport is not None:
        # close(), not abort(): the half already written must still reach the client.
        request.transport.close()
    return partial


async def _apply(
    fault: FaultPlan, request: web.Request, handler: Handler, state: SimState
) -> web.StreamResponse:
    if fault.mode == "5xx":
        return server_error(provider_of(request.path), fault.status)
    if fault.mode == "slow":
        response = await handler(request)
        await _park(request, state, _delay(fault, SLOW_DEFAULT_SECONDS))
        return response
    if fault.mode == "timeout":
        await _park(request, state, _delay(fault, TIMEOUT_DEFAULT_SECONDS))
        _abort(request, reset=False)
        # Nothing reaches the client: aiohttp finds the transport closed and drops this.
        return web.Response(status=204)
    if fault.mode == "reset":
        _abort(request, reset=True)
        return web.Response(status=204)
    if fault.mode == "half-body":
        return await _half_body(request, await handler(request))
    return await handler(request)


def _delay(fault: FaultPlan, default: float) -> float:
    return default if fault.delay_seconds is None else fault.delay_seconds


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_control_path(request.path):
        return await handler(request)
    state = request.app[SIM_STATE]
    fault = state.faults.take()
    if fault is None:
        return await handler(request)
    return await _apply(fault, request, handler, state)


@web.middleware
async def route_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unmatched paths and methods answer in the owning carrier's error shape."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        response = route_error(provider_of(request.path), exc.status, request.method, request.path)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
