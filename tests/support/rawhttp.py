"""HTTP spoken by hand over a real socket, for requests no HTTP client will write (smuggling,
absolute-URI request lines, trickled headers) and for watching when a server closes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    raw: bytes
    closed_after: float
    """Seconds from the first byte sent until the server closed (or the wait gave up)."""

    @property
    def status(self) -> int | None:
        """The status of the first answer, None when the server closed without one."""
        line = self.raw.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            return None
        return int(parts[1])

    @property
    def statuses(self) -> list[int]:
        """The status of every answer on the connection (pipelined answers included)."""
        return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", self.raw)]

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


async def exchange(
    host: str,
    port: int,
    data: bytes | list[tuple[bytes, float]],
    *,
    wait: float = 10.0,
) -> Answer:
    """Send ``data`` (or pieces, each followed by a pause of the given seconds, stopping early
    when the server closes) and read until the server closes or ``wait`` seconds pass."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    pieces = [(data, 0.0)] if isinstance(data, bytes) else data
    received = bytearray()

    async def read_all() -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)

    reading = asyncio.create_task(read_all())
    try:
        for piece, pause in pieces:
            if reading.done():
                break
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                break
            if pause:
                await asyncio.wait([reading], timeout=pause)
        remaining = max(0.0, wait - (time.monotonic() - started))
        await asyncio.wait([reading], timeout=remaining)
    finally:
        closed_after = time.monotonic() - started
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Answer(bytes(received), closed_after)
