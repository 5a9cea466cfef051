"""The compliance console: a web page (``GET /admin/``) and the JSON/CSV routes behind it.

Compliance officers review what was blocked and why; admins manage the opt-out list by hand.
Every asset is served from this package (``static/``): no CDN, no internet. See
:mod:`gateway.admin.routes` for the routes, :mod:`gateway.admin.sessions` for sign-in, cookies
and CSRF, and :mod:`gateway.admin.blocked` for the blocked-send log's filters and CSV.
"""

from __future__ import annotations

from gateway.admin.routes import add_routes

__all__ = ["add_routes"]
