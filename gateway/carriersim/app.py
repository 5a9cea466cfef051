"""The carrier simulator: a real aiohttp app speaking RingCentral's and Twilio's HTTP APIs.

It is an independent implementation of the carriers' wire formats (it imports nothing from
``gateway.dialects`` or ``policy``) so that Stopgate's tests, and the official SDKs, talk to
something that behaves like the carriers rather than like Stopgate's idea of them.

Routes: see ``rc_api`` and ``rc_subscriptions`` (``/restapi/…``), ``twilio_api``
(``/2010-04-01/…``), ``control`` and ``inbound`` (``/sim/…``) and ``faults`` (failure modes
for everything outside ``/sim``). Any other path answers 404 in the owning carrier's shape (or
plain JSON outside both carriers' prefixes).
"""

from __future__ import annotations

from aiohttp import web

from gateway.carriersim import control, rc_api, rc_consents, rc_subscriptions, twilio_api
from gateway.carriersim.faults import fault_middleware, route_error_middleware
from gateway.carriersim.state import SIM_STATE, SimCredentials, SimState

DEFAULT_CREDENTIALS = SimCredentials()
# MMS bodies may carry 1.5 MB of attachments plus the JSON part; room to spare.
CLIENT_MAX_SIZE = 16 * 1024 * 1024
SHUTDOWN_TIMEOUT_SECONDS = 5.0


async def _release_parked(app: web.Application) -> None:
    app[SIM_STATE].stopping.set()


def create_sim_app(
    *, credentials: SimCredentials = DEFAULT_CREDENTIALS, gateway_url: str | None = None
) -> web.Application:
    """A fresh simulator (its own tokens, deliveries and faults) for ``credentials``.

    ``gateway_url`` is where inbound webhooks will be delivered (``POST /sim/inbound``):
    ``{gateway_url}/webhooks/twilio``, and ``{gateway_url}/webhooks/ringcentral`` unless a
    RingCentral subscription names its own address.
    """
    # Faults outermost, so a half-body cut applies to whatever the inner layers answered.
    app = web.Application(
        middlewares=[fault_middleware, route_error_middleware], client_max_size=CLIENT_MAX_SIZE
    )
    app[SIM_STATE] = SimState(credentials=credentials, gateway_url=gateway_url)
    rc_api.add_routes(app.router)
    rc_consents.add_routes(app.router)
    rc_subscriptions.add_routes(app.router)
    twilio_api.add_routes(app.router)
    control.add_routes(app.router)
    app.on_shutdown.append(_release_parked)
    return app


def run_carrier_sim(host: str, port: int, gateway_url: str | None = None) -> None:
    """Serve the simulator on ``host:port`` until interrupted (blocking)."""
    web.run_app(
        create_sim_app(gateway_url=gateway_url),
        host=host,
        port=port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
    )
