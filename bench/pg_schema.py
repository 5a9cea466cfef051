"""A throwaway PostgreSQL schema for a benchmark run (shared by the bench scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator


@contextlib.contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A schema of its own on the PostgreSQL at ``base``: yields the store URL, drops it after."""
    import asyncpg

    name = f"bench_{secrets.token_hex(4)}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(base, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={name}"
    finally:
        asyncio.run(execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
