"""Suppression lists: do-not-call extracts, reassigned numbers and internal lists, each a named
set of customer numbers blocked for every sender (what overrides an entry: see
:class:`policy.consent.SuppressionKind`).

Importing a list streams its file in batches staged under a new generation, then publishes that
generation in one transaction: until then lookups see the previous members, afterwards exactly
the new ones (numbers no longer listed are released), and every gateway's cache is flushed
through the change feed. Memory stays flat whatever the list's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.consent_csv import RejectedRow
from gateway.errors import BadRequest
from gateway.store.base import ConsentStore, SuppressionRefresh
from policy.consent import SuppressionKind
from policy.numbers import is_scope_name

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
    batch: list[str] = []
    for row in rows:
        outcome.rows += 1
        if isinstance(row, RejectedRow):
            outcome.rejected += 1
            if len(outcome.first_rejections) < KEPT_REJECTIONS:
                outcome.first_rejections.append(row)
            continue
        batch.append(row)
        if len(batch) >= IMPORT_BATCH:
            await store.add_suppressions(name, generation, batch)
            batch.clear()
            if progress is not None:
                progress(outcome.rows, outcome.rejected)
    if batch:
        await store.add_suppressions(name, generation, batch)
    outcome.refresh = await store.publish_suppressions(name, generation, kind, listed_us, note)
    return outcome
