"""A test server that serves an app the way ``stopgate serve`` does: through the lean front
(gateway/front.py), so sends take the front's path and everything else is handed to aiohttp."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from gateway.server import FrontRunner


class FrontTestServer(TestServer):
    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return FrontRunner(self.app, **kwargs)
