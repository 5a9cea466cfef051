"""Every exception Stopgate raises on purpose, in one place.

I/O boundaries translate driver and network errors into these; the HTTP layer translates these
into responses (the send path in the carrier's own error shape, other routes in Stopgate's JSON
error shape ``{"error": {"reason": ..., "message": ...}}``). Nothing else should escape as a 500.

    StopgateError
    ├── BadRequest              4xx with a machine-readable ``reason``
    │   ├── InvalidPageToken
    │   └── RefusedPath         a path under a dialect's prefix, refused rather than forwarded
    │       ├── UnknownSendPath
    │       └── OwnPathSpelledOtherwise
    ├── StoreError
    │   └── StoreUnavailable    consent cannot be determined -> fail closed (503)
    ├── UpstreamError
    │   ├── UpstreamUnreachable -> 502
    │   │   └── UpstreamConnectFailed   no connection: the request surely never arrived
    │   └── UpstreamTimeout     -> 504
    └── ConfigError             bad configuration at start-up
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.dialects.base import Dialect


class StopgateError(Exception):
    """Base of every deliberate Stopgate error."""


class BadRequest(StopgateError):
    """The caller sent something Stopgate refuses; ``reason`` is machine-readable."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int = 400,
        parameter: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.parameter = parameter


class InvalidPageToken(BadRequest):
    def __init__(self) -> None:
        super().__init__("invalid-page-token", "pageToken is malformed or was tampered with")


class RefusedPath(BadRequest):
    """A path under a dialect's prefix that is refused rather than forwarded."""

    def __init__(self, dialect: Dialect, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.dialect = dialect


class UnknownSendPath(RefusedPath):
    """A POST under a dialect's prefix that ends like a send but has no send's shape."""

    def __init__(self, dialect: Dialect, raw_path: str) -> None:
        super().__init__(
            dialect,
            "unknown-path-shape",
            f"{raw_path} looks like a send but has no known send path shape",
        )


class OwnPathSpelledOtherwise(RefusedPath):
    """Another spelling (or method) of a path Stopgate serves itself: forwarding it would send a
    consent change meant for Stopgate's store to the carrier instead."""

    def __init__(self, dialect: Dialect, raw_path: str) -> None:
        super().__init__(
            dialect,
            "non-canonical-path",
            f"{raw_path} is Stopgate's consents API spelled otherwise; use the documented path",
        )


class StoreError(StopgateError):
    """The consent store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or cannot answer; consent is undeterminable."""


class UpstreamError(StopgateError):
    """The carrier API could not be used."""


class UpstreamUnreachable(UpstreamError):
    pass


class UpstreamConnectFailed(UpstreamUnreachable):
    """No connection could be made, so the carrier cannot have received the request."""


class UpstreamTimeout(UpstreamError):
    pass


class ConfigError(StopgateError):
    """The configuration is unusable; raised at start-up, never while serving."""
