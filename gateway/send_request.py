"""What the send path reads of a request, and the answer it gives when it relays the carrier's.

Two kinds of request reach :func:`gateway.sending.handle_send`: aiohttp's ``web.Request`` (a send
on a connection aiohttp serves) and :class:`gateway.front.FrontRequest` (a send the lean front
read itself). Both satisfy :class:`SendRequest`; the send path reads nothing else.

A send that reached the carrier is answered with a :class:`RelayedReply`: the carrier's reply
with its header bytes as they came, plus Stopgate's own headers. The front writes it out without
decoding a header; aiohttp's route turns it into a ``web.Response``. Every other answer (a
refusal, an error) is a ``web.Response``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiohttp import web

from gateway.upstream import RawHeaders, decoded


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
    def raw_headers(self) -> RawHeaders:
        """The same headers as the parser gave them: (name, value) pairs of bytes."""

    @property
    def query(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole body."""


class RelayedReply:
    """The carrier's reply to a forwarded send, as the client gets it: the carrier's status,
    end-to-end headers (raw) and body, then Stopgate's headers (``own``), which replace any of
    the carrier's by the same name."""

    def __init__(
        self,
        status: int,
        carrier_headers: RawHeaders,
        body: bytes,
        own: Sequence[tuple[str, str]],
    ) -> None:
        self.status = status
        self.carrier_headers = carrier_headers
        self.body = body
        self.own = own

    def header(self, name: str) -> str | None:
        """One of Stopgate's own headers (``name`` as it was set)."""
        for own_name, value in self.own:
            if own_name == name:
                return value
        return None

    def to_response(self) -> web.Response:
        headers = decoded(self.carrier_headers)
        for name, value in self.own:
            headers[name] = value
        return web.Response(status=self.status, body=self.body, headers=headers)
