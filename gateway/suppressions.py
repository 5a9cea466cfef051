"""Suppression lists: do-not-call extracts, reassigned numbers and internal lists, each a named
set of customer numbers blocked for every sender (what overrides an entry: see
:class:`policy.consent.SuppressionKind`).

Importing a list streams its file in batches staged under a new generation, then publishes that
generation in one transaction: until then lookups see the previous members, afterwards exactly
the new ones (numbers no longer listed are released), and every gateway's cache is flushed
through the change feed. Memory stays flat whatever the list's size.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.consent_csv import RejectedRow, parse_numbers
from gateway.errors import BadRequest
from gateway.store.base import ConsentStore, SuppressionRefresh
from policy.consent import SuppressionKind
from policy.numbers import is_scope_name

T = TypeVar("T")

IMPORT_BATCH = 5000
KEPT_REJECTIONS = 100
"""Rejected rows reported one by one; the rest are only counted (flat memory)."""


@dataclass(slots=True)
class ImportOutcome:
    refresh: SuppressionRefresh | None = None
    rows: int = 0
    rejected: int = 0
    first_rejections: list[RejectedRow] = field(default_factory=list)


def check_list_name(name: str) -> str:
    """A list's name as stored, or :class:`BadRequest` (it appears in commands and URLs)."""
    folded = name.strip().lower()
    if not is_scope_name(folded):
        raise BadRequest(
            "bad-list-name",
            f"a list name is 1-32 of a-z 0-9 _ - (starting with a letter or digit): {name!r}",
            parameter="name",
        )
    return folded


class _Batches:
    """Counts an import's rows and rejections into ``outcome`` and gathers its keys into
    batches of :data:`IMPORT_BATCH` (shared by every way a list is imported)."""

    def __init__(self, outcome: ImportOutcome) -> None:
        self._outcome = outcome
        self._batch: list[str] = []

    def take(self, row: str | RejectedRow) -> list[str] | None:
        """Count ``row``; a full batch to stage when this row completed one."""
        outcome = self._outcome
        outcome.rows += 1
        if isinstance(row, RejectedRow):
            outcome.rejected += 1
            if len(outcome.first_rejections) < KEPT_REJECTIONS:
                outcome.first_rejections.append(row)
            return None
        self._batch.append(row)
        if len(self._batch) < IMPORT_BATCH:
            return None
        full, self._batch = self._batch, []
        return full

    def rest(self) -> list[str]:
        rest, self._batch = self._batch, []
        return rest


async def import_list(
    store: ConsentStore,
    name: str,
    kind: SuppressionKind,
    rows: Iterable[str | RejectedRow],
    *,
    listed_us: int,
    note: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportOutcome:
    """Replace the members of list ``name`` with the keys of ``rows`` (see the module)."""
    outcome = ImportOutcome()
    generation = await store.stage_suppressions(name)
    batches = _Batches(outcome)
    for row in rows:
        full = batches.take(row)
        if full is not None:
            await store.add_suppressions(name, generation, full)
            if progress is not None:
                progress(outcome.rows, outcome.rejected)
    rest = batches.rest()
    if rest:
        await store.add_suppressions(name, generation, rest)
    outcome.refresh = await store.publish_suppressions(name, generation, kind, listed_us, note)
    return outcome


async def import_stream(
    store: ConsentStore,
    name: str,
    kind: SuppressionKind,
    read: Callable[[], Awaitable[bytes]],
    *,
    region: str,
    listed_us: int,
    note: str | None,
) -> ImportOutcome:
    """Like :func:`import_list`, from UTF-8 CSV bytes that ``read`` hands over a chunk at a
    time (``b""`` at the end): an HTTP body, streamed. Decoding, CSV parsing and
    canonicalisation run in a worker thread, so the event loop goes on deciding sends; the
    thread asks the loop for each chunk and hands each full batch back to be staged, so at most
    one chunk and one batch are held. Raises :class:`BadRequest` for bytes that are not UTF-8
    (nothing is published then)."""
    loop = asyncio.get_running_loop()
    outcome = ImportOutcome()
    generation = await store.stage_suppressions(name)

    def on_loop(step: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_awaited(step), loop).result()

    def lines() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        pending = ""
        while True:
            chunk = on_loop(read())
            try:
                pending += decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise BadRequest("malformed-body", f"the list is not UTF-8 text: {exc}") from None
            *complete, pending = pending.splitlines(keepends=True) or [""]
            if pending.endswith(("\n", "\r")):
                complete.append(pending)
                pending = ""
            yield from complete
            if not chunk:
                if pending:
                    yield pending
                return

    # Looked up here, on the event loop: the store's metrics are made on their first lookup,
    # and they are the loop thread's alone.
    add_suppressions = store.add_suppressions

    def parse() -> None:
        batches = _Batches(outcome)
        for row in parse_numbers(lines(), region=region):
            full = batches.take(row)
            if full is not None:
                on_loop(add_suppressions(name, generation, full))
        rest = batches.rest()
        if rest:
            on_loop(add_suppressions(name, generation, rest))

    await asyncio.to_thread(parse)
    outcome.refresh = await store.publish_suppressions(name, generation, kind, listed_us, note)
    return outcome


async def _awaited(step: Awaitable[T]) -> T:
    return await step
