"""A CSV download answered chunk by chunk: the consents export and the blocked-send log.

Apart from :mod:`gateway.consent_csv`, which the command line's import and export load without
the HTTP server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


async def stream_csv(
    request: web.Request, filename: str, chunks: AsyncIterator[bytes]
) -> web.StreamResponse:
    """Answer with CSV written chunk by chunk (constant memory). The caller reads its first page
    before calling, so a store failure is still a clean error rather than a cut stream."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
