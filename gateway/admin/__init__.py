"""The compliance console: a web page (``GET /admin/``) and the JSON/CSV routes behind it.

Compliance officers review what was blocked and why; admins manage the opt-out list by hand.
Every asset is served from this package (``static/``): no CDN, no internet. See
:mod:`gateway.admin.routes` for the routes, :mod:`gateway.admin.sessions` for sign-in, cookies
and CSRF, and :mod:`gateway.admin.blocked` for the blocked-send log's filters and CSV, and
:mod:`gateway.admin.suppression_routes` for suppression lists.
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin import routes, suppression_routes


def add_routes(app: web.Application) -> None:
    """Register the console and the suppression-list routes (before the carrier catch-all)."""
    routes.add_routes(app)
    suppression_routes.add_routes(app)


__all__ = ["add_routes"]
