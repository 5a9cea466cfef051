"""Which requests are consent-checked sends, which are forwarded, and which are not ours.

Matching runs on a normalised copy of the path (percent-decoded, dot-segments resolved, slashes
collapsed, ``;params`` dropped, lower-cased, no trailing slash), so no spelling of a send path
that a carrier might still accept as a send can pass unchecked. The request itself is forwarded
with its path as received.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from gateway.dialects.base import Dialect, SendKind
from gateway.errors import OwnPathSpelledOtherwise, UnknownSendPath


@dataclass(frozen=True, slots=True)
class RouteMatch:
    dialect: Dialect
    send: SendKind | None
    """The kind of send, or None for a request forwarded unchanged."""


# Paths under a carrier prefix that Stopgate serves itself (the consents API), normalised.
_OWN_PATHS = re.compile(r"/restapi/v2/accounts/[^/]+/sms/consents(?:/.*)?")


def normalise_path(raw_path: str) -> str:
    path = unquote(raw_path, errors="replace")
    segments = [segment.split(";", 1)[0] for segment in path.split("/")]
    path = posixpath.normpath("/" + "/".join(s for s in segments if s))
    return path.lower().rstrip("/") or "/"


@lru_cache(maxsize=512)
def classify(method: str, raw_path: str, dialects: tuple[Dialect, ...]) -> RouteMatch | None:
    """Match a request to a dialect; None when no dialect owns the path (a 404, never forwarded).

    Memoised: a client sends to the same few paths over and over (a refusal is not memoised).

    Raises :class:`UnknownSendPath` for a POST whose path ends like a send but has no send's
    shape, and :class:`OwnPathSpelledOtherwise` for a path of Stopgate's own consents API that
    the router did not match as written.
    """
    path = normalise_path(raw_path)
    for dialect in dialects:
        if not (path + "/").startswith(dialect.prefix):
            continue
        if _OWN_PATHS.fullmatch(path):
            # The router serves the documented spelling; anything reaching here is another one.
            raise OwnPathSpelledOtherwise(dialect, raw_path)
        if method.upper() != "POST":
            return RouteMatch(dialect, None)
        for route in dialect.send_routes:
            if route.pattern.fullmatch(path):
                return RouteMatch(dialect, route.kind)
        if path.rsplit("/", 1)[-1] in dialect.send_markers:
            raise UnknownSendPath(dialect, raw_path)
        return RouteMatch(dialect, None)
    return None
