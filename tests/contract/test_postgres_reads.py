"""PostgreSQL reads on connections kept out of the pool between reads (the cheap cache miss):
bounded, shared with writes, and replaced when the server drops them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.base import ConsentChange
from gateway.store.postgres import (
    _RECORD_COLUMNS,
    SELECT_RECORDS_OF_PAIRS,
    PostgresStore,
    _text_array,
)
from policy.consent import OptStatus, Source
from tests.support import postgres

F1 = "+16505550100"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres.server_or_skip() as url, postgres.schema(url) as schema_url:
        yield schema_url


def customer(n: int) -> str:
    return f"+1650556{n:04d}"


async def _backends(url: str, name: str) -> list[int]:
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()


async def _terminate(url: str, name: str) -> None:
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
    finally:
        await conn.close()


async def test_concurrent_reads_and_writes_share_a_bounded_pool(pg_url: str) -> None:
    name = f"sg_reads_{os.getpid()}"
    store = PostgresStore(f"{pg_url}&application_name={name}&pool_max_size=4")
    await store.open()
    try:
        await store.apply(
            [
                ConsentChange(F1, customer(n), OptStatus.OPT_OUT, Source.API, actor="t")
                for n in range(20)
            ]
        )

        async def read(n: int) -> OptStatus:
            return (await store.get_records(customer(n % 20), [F1, "*"]))[F1].status

        async def write(n: int) -> None:
            change = ConsentChange(F1, customer(100 + n), OptStatus.OPT_IN, Source.API, actor="t")
            await store.apply([change])

        statuses = await asyncio.gather(
            *(read(n) for n in range(60)), *(write(n) for n in range(10))
        )
        assert statuses[:60] == [OptStatus.OPT_OUT] * 60
        assert store._readers <= 2 and len(store._idle_readers) == store._readers
        assert len(await _backends(pg_url, name)) <= 4
        # Idle readers are reused: no new connection for sequential reads.
        before = sorted(await _backends(pg_url, name))
        for n in range(50):
            await read(n)
        assert sorted(await _backends(pg_url, name)) == before
    finally:
        await store.close()
    assert store._idle_readers == []
    assert await _backends(pg_url, name) == []


async def test_reads_go_on_when_the_server_drops_the_kept_connections(pg_url: str) -> None:
    name = f"sg_reads_lost_{os.getpid()}"
    store = PostgresStore(f"{pg_url}&application_name={name}")
    await store.open()
    try:
        await store.apply(
            [ConsentChange(F1, customer(1), OptStatus.OPT_OUT, Source.API, actor="t")]
        )
        for _ in range(3):
            assert (await store.get_records(customer(1), [F1]))[F1].status is OptStatus.OPT_OUT
            await _terminate(pg_url, name)
        assert (await store.get_records(customer(1), [F1]))[F1].status is OptStatus.OPT_OUT
        assert store._readers == len(store._idle_readers) <= store.options.pool_max_size // 2
    finally:
        await store.close()


async def test_a_pool_of_one_keeps_no_connection_for_reads(pg_url: str) -> None:
    store = PostgresStore(f"{pg_url}&pool_max_size=1")
    await store.open()
    try:
        assert await store.get_records(customer(1), [F1]) == {}
        assert store._readers == 0 and store._idle_readers == []
        await store.apply([ConsentChange(F1, customer(1), OptStatus.OPT_IN, Source.API, actor="t")])
    finally:
        await store.close()


_STORABLE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


async def test_text_array_literal_reads_back_as_the_values_given(pg_url: str) -> None:
    """``_text_array`` (the pair lists of a consent read) against PostgreSQL's own array input:
    any storable text, quotes, backslashes, braces, commas, blanks and ``NULL`` included."""
    conn = await asyncpg.connect(pg_url.split("?")[0])
    try:
        statement = await conn.prepare("SELECT $1::text::text[]")
        samples: list[list[str]] = [[], [""], ["NULL"], ['"', "\\", "{}", "a,b", " x "]]

        @settings(max_examples=200, deadline=None, derandomize=True, database=None)
        @given(st.lists(_STORABLE_TEXT, max_size=8))
        def collect(values: list[str]) -> None:
            samples.append(values)

        collect()
        for values in samples:
            assert await statement.fetchval(_text_array(values)) == values, values
    finally:
        await conn.close()


_EARLIER_QUERY = (
    f"SELECT {_RECORD_COLUMNS} FROM consent"
    " WHERE (to_key, from_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
)
"""What ``SELECT_RECORDS_OF_PAIRS`` replaced: the new one must find exactly its rows."""


async def test_the_pairs_read_finds_what_the_earlier_query_found(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    businesses = ["*", F1, "+16505550101"]
    try:
        await store.apply(
            [
                ConsentChange(
                    businesses[n % 3], customer(n), OptStatus.OPT_OUT, Source.API, actor="test"
                )
                for n in range(0, 40, 2)
            ]
        )
    finally:
        await store.close()
    schema = pg_url.split("schema=", 1)[1].split("&", 1)[0]
    conn = await asyncpg.connect(pg_url.split("?")[0], server_settings={"search_path": schema})
    try:
        samples: list[list[tuple[str, str]]] = [[(customer(0), "*")]]

        @settings(max_examples=60, deadline=None, derandomize=True, database=None)
        @given(
            st.lists(
                st.tuples(st.integers(0, 45).map(customer), st.sampled_from([*businesses, "x"])),
                max_size=30,
            )
        )
        def collect(pairs: list[tuple[str, str]]) -> None:
            samples.append(pairs)

        collect()
        found = 0
        for pairs in samples:
            unique = list(dict.fromkeys(pairs))  # as _current passes them
            to_keys, from_keys = [p[0] for p in unique], [p[1] for p in unique]
            now = await conn.fetch(
                SELECT_RECORDS_OF_PAIRS, _text_array(to_keys), _text_array(from_keys)
            )
            before = await conn.fetch(_EARLIER_QUERY, to_keys, from_keys)
            assert sorted(map(tuple, now)) == sorted(map(tuple, before)), pairs
            found += len(now)
        assert found > len(samples) // 4  # the samples do meet records, not only misses
    finally:
        await conn.close()
