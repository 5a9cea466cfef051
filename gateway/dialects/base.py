"""What every carrier dialect provides: wire format to plain values, and back.

A dialect never touches the store, the cache or the network. It parses a send request into a
:class:`ParsedSend`, re-encodes a body when Stopgate changed the text or dropped recipients, and
renders refusals in its carrier's own error shape. Adding a carrier is one module implementing
:class:`Dialect` plus its registration in :mod:`gateway.dialects`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache
from typing import Any, Protocol

from gateway.errors import BadRequest
from policy.footer import LengthCap


class SendKind(enum.Enum):
    MESSAGE = "message"
    """One text to one or more recipients; any blocked recipient refuses the whole send."""
    BATCH = "batch"
    """Independent messages (RingCentral A2P batch); blocked recipients are dropped."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One message of a batch: its recipients and its own text (None: the batch text)."""

    index: int
    recipients: tuple[str, ...]
    text: str | None


@dataclass(slots=True)
class ParsedSend:
    """A send request as plain values. ``recipients`` lists raw addresses as the caller wrote
    them; the shell canonicalises them. ``document`` is the dialect's own decoded body, kept so it
    can re-encode with changes and otherwise forward the original bytes untouched."""

    kind: SendKind
    business: str | None
    service: str | None
    recipients: tuple[str, ...]
    text: str | None
    items: tuple[BatchItem, ...] = ()
    document: Any = None


@dataclass(frozen=True, slots=True)
class Blocked:
    """A recipient Stopgate refuses, with the original batch index when there is one."""

    recipient: str
    reason: str
    index: int | None = None


def items_without(items: Iterable[BatchItem], dropped: Iterable[Blocked]) -> list[BatchItem]:
    """``items`` without the ``dropped`` recipients (by batch index); emptied items go."""
    gone = {(b.index, b.recipient) for b in dropped}
    kept = []
    for item in items:
        recipients = tuple(r for r in item.recipients if (item.index, r) not in gone)
        if recipients:
            kept.append(BatchItem(item.index, recipients, item.text))
    return kept


class ErrorKind(enum.Enum):
    BLOCKED = "blocked"
    BAD_REQUEST = "bad-request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    TOO_LARGE = "too-large"
    UNSUPPORTED_MEDIA = "unsupported-media-type"
    CONSENT_UNAVAILABLE = "consent-unavailable"
    UPSTREAM_UNREACHABLE = "upstream-unreachable"
    UPSTREAM_TIMEOUT = "upstream-timeout"
    RESTRICTED = "restricted"
    """Refused by a sending rule (quiet hours, frequency cap), not by consent: the recipient
    did not opt out, so the carriers' opt-out codes would mislead the app."""


ERROR_STATUS: Mapping[ErrorKind, int] = {
    ErrorKind.BLOCKED: 400,
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.UNSUPPORTED_MEDIA: 415,
    ErrorKind.CONSENT_UNAVAILABLE: 503,
    ErrorKind.UPSTREAM_UNREACHABLE: 502,
    ErrorKind.UPSTREAM_TIMEOUT: 504,
    ErrorKind.RESTRICTED: 400,
}


@dataclass(frozen=True, slots=True)
class DialectError:
    """A refusal to render: ``reason`` is Stopgate's machine-readable reason."""

    kind: ErrorKind
    reason: str
    message: str
    parameter: str | None = None
    blocked: tuple[Blocked, ...] = field(default=())

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.kind]


@dataclass(frozen=True, slots=True)
class SendRoute:
    """A path pattern that is a consent-checked send when POSTed."""

    pattern: re.Pattern[str]
    kind: SendKind


class Dialect(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def prefix(self) -> str:
        """The path prefix this dialect owns; everything under it goes to its upstream."""

    @property
    def length_cap(self) -> LengthCap: ...

    @property
    def send_routes(self) -> Sequence[SendRoute]: ...

    @property
    def send_markers(self) -> Sequence[str]:
        """Last path segments only send paths end in; a POST ending in one that matches no send
        route is refused rather than forwarded unchecked."""

    def parse_send(self, kind: SendKind, content_type_header: str, body: bytes) -> ParsedSend:
        """Decode a send body; raise :class:`gateway.errors.BadRequest` for malformed input."""

    def encode_send(self, parsed: ParsedSend) -> tuple[bytes, str]:
        """Re-encode ``parsed`` after Stopgate changed its text or items: (body, content type)."""

    def set_text(self, parsed: ParsedSend, text: str) -> None:
        """Replace the message text (single message sends)."""

    def set_batch(self, parsed: ParsedSend, items: Sequence[BatchItem]) -> None:
        """Keep only ``items`` in a batch, with their (possibly changed) texts."""

    def merge_batch_reply(
        self, reply: Any, kept: Sequence[BatchItem], dropped: Sequence[Blocked]
    ) -> Any:
        """Splice Stopgate's dropped recipients into the carrier's batch reply, mapping the
        carrier's indexes (into the forwarded list) back to the caller's original indexes."""

    def error_body(self, error: DialectError) -> dict[str, Any]:
        """The carrier-shaped JSON body of a refusal."""

    def refused_as_opted_out(self, status: int, body: bytes) -> bool:
        """Whether the carrier refused a forwarded send because the recipient opted out
        (Stopgate then records what the carrier knows)."""


@lru_cache(maxsize=256)
def _content_type(content_type_header: str) -> tuple[str, str | None, str | None]:
    """(media type, boundary, charset) of a ``Content-Type`` value. Memoised: clients send the
    same few values on every request (multipart boundaries vary, and just pass through)."""
    message = Message()
    message["content-type"] = content_type_header or "application/octet-stream"
    boundary = message.get_param("boundary")
    charset = message.get_param("charset")
    return (
        message.get_content_type(),
        boundary if isinstance(boundary, str) else None,
        charset if isinstance(charset, str) else None,
    )


def media_type(content_type_header: str) -> tuple[str, str | None]:
    """``'multipart/form-data; boundary=x'`` -> ``('multipart/form-data', 'x')``."""
    content_type, boundary, _ = _content_type(content_type_header)
    return content_type, boundary


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """An inbound SMS as plain values, addresses as the carrier wrote them."""

    provider: str
    message_id: str
    sender: str
    """The customer who wrote."""
    recipients: tuple[str, ...]
    """The business number(s) it was sent to."""
    text: str
    service: str | None = None
    """Twilio Messaging Service the number belongs to, when the carrier says so."""
    carrier_handled: str | None = None
    """The carrier's own keyword handling (Twilio ``OptOutType``): it already confirmed."""


_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def refuse_foreign_charset(content_type_header: str) -> None:
    """Stopgate reads bodies as UTF-8; a body declared in another charset would read
    differently at the carrier (UTF-7 hides ``&`` and ``=``), so it is refused."""
    charset = _content_type(content_type_header)[2]
    if charset is not None and charset.strip().lower() not in _UTF8_CHARSETS:
        raise BadRequest(
            "unsupported-charset", f"charset {charset!r} is not accepted: use UTF-8", status=415
        )
