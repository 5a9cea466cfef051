"""What the send path reads of a request.

Two kinds of request reach :func:`gateway.sending.handle_send`: aiohttp's ``web.Request`` (a send
on a connection aiohttp serves) and :class:`gateway.front.FrontRequest` (a send the lean front
read itself). Both satisfy :class:`SendRequest`; the send path reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiohttp import web


class SendRequest(Protocol):
    @property
    def app(self) -> web.Application: ...

    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str:
        """The request target as received: path and query, percent-encoding kept."""

    @property
    def path(self) -> str:
        """The path, percent-decoded."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive, as received (a ``CIMultiDictProxy``)."""

    @property
    def query(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole body."""
