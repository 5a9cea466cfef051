"""A deliberately tiny, fast stand-in for the Twilio API: the upstream of the send-path bench.

One asyncio ``Protocol`` (uvloop when installed), HTTP/1.1 with keep-alive and pipelining, no
framework. It answers

- ``POST …/Messages.json`` (any account, any credentials): ``201`` with a static Twilio message
  resource of about 600 bytes;
- ``GET /2010-04-01/Accounts/{sid}.json``: ``200`` with a small account resource (only reached
  if the gateway validates credentials upstream);
- anything else: ``404``.

Request bodies are read (``Content-Length`` or ``chunked``) and discarded. The response bytes
are built once at start-up, so a request costs one buffer scan and one ``write``.

    python bench/fast_upstream.py --host 127.0.0.1 --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any, cast

MESSAGE_RESOURCE: dict[str, Any] = {
    "account_sid": "AC5709a7e55709a7e55709a7e55709a7e5",
    "api_version": "2010-04-01",
    "body": "Your appointment is confirmed for tomorrow at 10:00.",
    "date_created": "Thu, 01 May 2025 12:00:00 +0000",
    "date_updated": "Thu, 01 May 2025 12:00:00 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+16505550100",
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "sid": "SM0123456789abcdef0123456789abcdef",
    "status": "queued",
    "to": "+16505551000",
    "uri": "/2010-04-01/Accounts/AC5709a7e55709a7e55709a7e55709a7e5/Messages/"
    "SM0123456789abcdef0123456789abcdef.json",
}

ACCOUNT_RESOURCE: dict[str, Any] = {
    "sid": "AC5709a7e55709a7e55709a7e55709a7e5",
    "friendly_name": "bench",
    "status": "active",
    "type": "Full",
}

NOT_FOUND: dict[str, Any] = {"code": 20404, "message": "Not found", "status": 404}


def _response(status: str, document: dict[str, Any]) -> bytes:
    body = json.dumps(document).encode()
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Twilio-Request-Id: RQ0123456789abcdef0123456789abcdef\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


CREATED = _response("201 Created", MESSAGE_RESOURCE)
ACCOUNT = _response("200 OK", ACCOUNT_RESOURCE)
MISSING = _response("404 Not Found", NOT_FOUND)
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Incomplete(Exception):
    """More bytes are needed before the request at the head of the buffer is complete."""


def _chunked_end(buffer: bytearray, start: int) -> int:
    """The offset just past a chunked body that begins at ``start``."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            raise _Incomplete
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0].strip() or b"0", 16)
        position = line_end + 2
        if size == 0:
            # Trailers (usually none) end with an empty line.
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            if trailer_end < 0:
                raise _Incomplete
            return trailer_end + 4
        position += size + 2
        if position > len(buffer):
            raise _Incomplete


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("_buffer", "_transport")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        close = False
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = bytes(buffer[:head_end]).lower()
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            if len(parts) != 3:
                out.append(BAD)
                close = True
                break
            method, target = parts[0], parts[1]
            body_start = head_end + 4
            try:
                if b"\r\ntransfer-encoding: chunked" in head:
                    end = _chunked_end(buffer, body_start)
                else:
                    marker = head.find(b"\r\ncontent-length:")
                    length = 0
                    if marker >= 0:
                        value_end = head.find(b"\r\n", marker + 2)
                        length = int(head[marker + 17 : value_end if value_end >= 0 else None])
                    end = body_start + length
                    if end > len(buffer):
                        raise _Incomplete
            except _Incomplete:
                break
            except ValueError:
                out.append(BAD)
                close = True
                break
            del buffer[:end]
            path = target.split(b"?", 1)[0]
            if method == b"post" and path.endswith(b"/messages.json"):
                out.append(CREATED)
            elif method == b"get" and path.startswith(b"/2010-04-01/accounts/"):
                out.append(ACCOUNT)
            else:
                out.append(MISSING)
            if b"\r\nconnection: close" in head:
                close = True
                break
        transport = self._transport
        if transport is None:
            return
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fast upstream listening on {host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def event_loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
