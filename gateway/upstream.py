"""aiohttp's client as Stopgate uses it to reach the carriers (pass-through routes, OAuth,
credential checks, its own login), and the header rules of a proxy. Consent-checked sends go
through the lean client of :mod:`gateway.upstream_lean` instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.config import Settings
from gateway.errors import UpstreamConnectFailed, UpstreamTimeout, UpstreamUnreachable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)


def end_to_end_headers(
    headers: Mapping[str, str] | CIMultiDictProxy[str], drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """The headers a proxy passes on: hop-by-hop ones (and those ``Connection`` names) dropped."""
    dropped = _dropped(tuple(drop))
    connection = headers.get("Connection")
    if connection:
        dropped = dropped | {token.strip().lower() for token in connection.split(",")}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in dropped:
            out.add(name, value)
    return out


@lru_cache(maxsize=16)
def _dropped(drop: tuple[str, ...]) -> frozenset[str]:
    return HOP_BY_HOP | {d.lower() for d in drop}


RawHeaders = Sequence[tuple[bytes, bytes]]
"""Header (name, value) pairs as the HTTP parsers give them (aiohttp's ``raw_headers``)."""

HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)


def dropped_bytes(*drop: str) -> frozenset[bytes]:
    """The hop-by-hop names and ``drop``, lower case, as :func:`end_to_end_raw` takes them."""
    return HOP_BY_HOP_BYTES | {d.lower().encode("ascii") for d in drop}


def end_to_end_raw(
    headers: RawHeaders, drop: frozenset[bytes] = HOP_BY_HOP_BYTES
) -> list[tuple[bytes, bytes]]:
    """:func:`end_to_end_headers` on raw pairs, bytes kept as they came: ``drop`` (lower-case
    names, the hop-by-hop ones among them) and every name a ``Connection`` header lists go."""
    for name, value in headers:
        if name.lower() == b"connection":
            drop = drop | {token.strip().lower() for token in value.split(b",")}
    return [(name, value) for name, value in headers if name.lower() not in drop]


def with_header(headers: RawHeaders, name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``name`` set to ``value``: as ``CIMultiDict.__setitem__`` does, ``name``
    and ``value`` take the place of the first pair of that name (any case) and the others go;
    appended when absent."""
    lowered = name.lower()
    out: list[tuple[bytes, bytes]] = []
    found = False
    for pair in headers:
        if pair[0].lower() != lowered:
            out.append(pair)
        elif not found:
            out.append((name, value))
            found = True
    if not found:
        out.append((name, value))
    return out


def decoded(headers: RawHeaders) -> CIMultiDict[str]:
    """Raw pairs as text headers, decoded as aiohttp decodes them."""
    return CIMultiDict(
        [
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in headers
        ]
    )


def make_client_session(settings: Settings) -> aiohttp.ClientSession:
    """One shared session: explicit timeouts, no cookies, bodies relayed as they come."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.upstream_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        ),
        timeout=aiohttp.ClientTimeout(
            total=settings.upstream_timeout, sock_connect=settings.upstream_connect_timeout
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        # Pass the caller's headers as they are; add none of our own.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


@lru_cache(maxsize=1024)
def upstream_url(base: str, raw_path_qs: str) -> URL:
    """``base`` + the request's path and query, byte-exact (no re-encoding). Memoised: a
    client sends to the same few paths (URLs are immutable)."""
    return URL(base.rstrip("/") + raw_path_qs, encoded=True)


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    headers: CIMultiDict[str],
    data: Any = None,
) -> aiohttp.ClientResponse:
    """Start an upstream request; translate connection failures into Stopgate's errors.

    Never follows redirects: a redirect is the carrier's answer, relayed to the caller.
    """
    try:
        return await session.request(method, url, headers=headers, data=data, allow_redirects=False)
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{url.host}: no answer in time") from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectFailed(f"{url.host}: {type(exc).__name__}") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachable(f"{url.host}: {type(exc).__name__}") from exc


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """Read a whole upstream body; a connection cut mid-body is the upstream's failure."""
    try:
        return await response.read()
    except TimeoutError as exc:
        raise UpstreamTimeout("upstream body did not arrive in time") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachable(f"upstream body cut short: {type(exc).__name__}") from exc
