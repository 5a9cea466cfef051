"""The Python floor of the bench suite: a bare aiohttp pass-through proxy.

Every request is forwarded to ``--upstream`` with its method, path, query, headers (hop-by-hop
ones dropped) and body, through one shared ``ClientSession``, and the upstream's status, headers
and body are relayed (the hop-by-hop rule is Stopgate's own ``end_to_end_headers``). No
parsing, no consent check, no logging: what any aiohttp proxy costs before it does anything
useful. It runs on uvloop when installed, like ``stopgate serve``.

    python bench/passthrough_proxy.py --port 8092 --upstream http://127.0.0.1:8091
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
from aiohttp import web

from gateway.upstream import end_to_end_headers

SESSION = web.AppKey("session", aiohttp.ClientSession)


def create_app(upstream: str) -> web.Application:
    base = upstream.rstrip("/")

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        async with request.app[SESSION].request(
            request.method,
            base + request.raw_path,
            headers=end_to_end_headers(request.headers),
            data=body,
            allow_redirects=False,
        ) as reply:
            payload = await reply.read()
            return web.Response(
                status=reply.status, body=payload, headers=end_to_end_headers(reply.headers)
            )

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8091")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_app(args.upstream), host=args.host, port=args.port, print=None, access_log=None
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
