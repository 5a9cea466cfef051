"""The simulator's own routes under ``/sim`` (never subject to faults).

- ``GET /sim/health`` → ``{"status": "ok"}``: a readiness probe for process-based tests.
- ``GET /sim/messages`` → ``{"messages": [...]}``: everything delivered, oldest first, **one
  entry per recipient** (a RingCentral send to three numbers or an A2P batch yields one entry
  per number). Entry fields: ``id`` (``sim-N``), ``provider`` (``ringcentral``|``twilio``),
  ``api`` (``sms``|``mms``|``a2p-batch``|``messages``), ``message_id`` (the carrier's id: RC
  message id, A2P batch id, Twilio SID), ``from`` (for a Twilio send through a Messaging
  Service without ``From``: the ``MG…`` SID), ``to``, ``text``, ``media`` (attachment file
  names or ``MediaUrl``s), ``messaging_service_sid``, ``received_at`` (ISO 8601 UTC).
  Optional query filters: ``provider``, ``to`` (exact; an unencoded leading ``+`` that
  arrived as a space is put back).
- ``DELETE /sim/messages`` → ``{"deleted": n}``.
- ``GET /sim/faults`` → the current plan ``{mode, delay_seconds, count, status}`` where
  ``count`` is how many requests are still to be hit (null: until replaced).
- ``POST /sim/faults`` ``{"mode", "delay_seconds"?, "count"?, "status"?}`` replaces the plan;
  ``{"mode": "none"}`` clears it. See ``gateway.carriersim.faults`` for what each mode does.
- ``POST /sim/inbound`` → delivers a real, signed inbound-SMS webhook to the gateway and
  answers what the gateway answered. See ``gateway.carriersim.inbound``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.carriersim.inbound import inbound
from gateway.carriersim.state import FAULT_MODES, SIM_STATE, FaultMode, FaultPlan
from gateway.carriersim.wire import sim_error


def _bad_request(message: str) -> web.Response:
    return sim_error(400, "invalid_request", message)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def list_messages(request: web.Request) -> web.Response:
    provider = request.query.get("provider")
    to = request.query.get("to")
    if to is not None and to.startswith(" "):
        # "?to=+1650…" typed without encoding: the "+" arrived as a space.
        to = "+" + to.lstrip()
    entries = [
        entry.to_json()
        for entry in request.app[SIM_STATE].delivered
        if (provider is None or entry.provider == provider) and (to is None or entry.to == to)
    ]
    return web.json_response({"messages": entries})


async def clear_messages(request: web.Request) -> web.Response:
    delivered = request.app[SIM_STATE].delivered
    count = len(delivered)
    delivered.clear()
    return web.json_response({"deleted": count})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_STATE].faults.to_json())


def _parse_fault(raw: Any) -> FaultPlan | str:
    if not isinstance(raw, dict):
        return "the body must be a JSON object"
    mode = raw.get("mode")
    if mode not in FAULT_MODES:
        return f"mode must be one of {', '.join(FAULT_MODES)}"
    delay = raw.get("delay_seconds")
    if delay is not None and (
        isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0
    ):
        return "delay_seconds must be a number >= 0"
    count = raw.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        return "count must be an integer >= 1"
    status = raw.get("status", 503)
    if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
        return "status must be an integer from 500 to 599"
    fault_mode: FaultMode = mode
    return FaultPlan(
        mode=fault_mode,
        delay_seconds=None if delay is None else float(delay),
        remaining=count,
        status=status,
    )


async def set_faults(request: web.Request) -> web.Response:
    try:
        raw = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _bad_request("the body must be JSON")
    plan = _parse_fault(raw)
    if isinstance(plan, str):
        return _bad_request(plan)
    request.app[SIM_STATE].faults = plan
    return web.json_response(plan.to_json())


async def add_carrier_opt_out(request: web.Request) -> web.Response:
    """``{"number": ...}``: the carrier itself now refuses sends to this number (Twilio 21610),
    as when a recipient opted out at the carrier."""
    try:
        document = await request.json()
    except ValueError:
        return _bad_request("body must be JSON")
    number = document.get("number") if isinstance(document, dict) else None
    if not isinstance(number, str) or not any(c.isdigit() for c in number):
        return _bad_request("number is required")
    request.app[SIM_STATE].carrier_opt_outs.add("".join(c for c in number if c.isdigit()))
    return web.json_response({"number": number, "opted_out": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/sim/carrier-opt-outs", add_carrier_opt_out)
    router.add_get("/sim/health", health)
    router.add_get("/sim/messages", list_messages)
    router.add_delete("/sim/messages", clear_messages)
    router.add_get("/sim/faults", get_faults)
    router.add_post("/sim/faults", set_faults)
    router.add_post("/sim/inbound", inbound)
