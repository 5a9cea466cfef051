"""The local spool: where an inbound consent change goes when the store cannot take it.

Carriers retry webhooks little or not at all, so a 503 can lose a STOP. While the store is down,
an inbound event is appended to this file and fsync'd *before* the webhook is acknowledged; a
background task replays the file, in order, once the store is back. Replays are idempotent
(the store records each provider message id once), so a crash mid-drain only replays again.
Changes carry their receipt time, so a replay never outranks a later decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.store.base import ConsentChange, ConsentStore, FollowUp, OutboxItem
from policy.consent import ConsentRecord, OptStatus, Source


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    provider: str
    message_id: str
    received_us: int
    changes: tuple[ConsentChange, ...]
    outbox: tuple[OutboxItem, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "provider": self.provider,
                "message_id": self.message_id,
                "received_us": self.received_us,
                "changes": [
                    [
                        c.from_key,
                        c.to_key,
                        c.status.value,
                        c.source.value,
                        c.actor,
                        c.note,
                        c.modified_us,
                    ]
                    for c in self.changes
                ],
                "outbox": [
                    [o.kind, o.payload, o.not_before_us, o.deadline_us] for o in self.outbox
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> SpooledEvent:
        raw: dict[str, Any] = json.loads(line)
        return cls(
            provider=raw["provider"],
            message_id=raw["message_id"],
            received_us=int(raw["received_us"]),
            changes=tuple(
                ConsentChange(f, t, OptStatus(s), Source(src), actor, note, at)
                for f, t, s, src, actor, note, at in raw["changes"]
            ),
            outbox=tuple(OutboxItem(k, p, nb, dl) for k, p, nb, dl in raw["outbox"]),
        )

    def records(self) -> list[ConsentRecord]:
        return [
            ConsentRecord(c.from_key, c.to_key, c.status, c.source, c.modified_us or 0, c.note)
            for c in self.changes
        ]


log = logging.getLogger("stopgate.spool")


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written: on a full disk (or a file-size limit) a write
    may take only part of the data and still succeed. Raises OSError when no more fits."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no byte of the spool line could be written")
        view = view[written:]


class Spool:
    """An append-only JSON-lines file, each append fsync'd before it returns."""

    CHECK_SECONDS = 0.1
    """How long :meth:`pending` trusts its last look at the file (appends by this process are
    known at once; another worker process's within this long)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()
        self._appended = False
        """This process appended since its last drain."""
        self._seen_pending = False
        self._checked_at = -math.inf

    async def append(self, event: SpooledEvent) -> None:
        """Durable when it returns; raises OSError when the spool cannot be written either."""
        line = (event.to_json() + "\n").encode()
        async with self._lock:
            await asyncio.to_thread(self._append, line)
            self._appended = True

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # Worker processes share the file: an append never lands between another
            # process's replay and its truncation.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A crash left a torn line: end it, so this event starts a line of its own.
                line = b"\n" + line
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                # Disk full part-way: take the fragment back (never acknowledged), so no torn
                # line is left for a drain to quarantine; the caller answers 503.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def load(self) -> list[SpooledEvent]:
        """Every complete event in order (see :meth:`read`)."""
        return self.read()[0]

    def read(self) -> tuple[list[SpooledEvent], list[str]]:
        """(events in order, lines that are not events). A torn line - a crash mid-append,
        never acknowledged - is among the latter; it is kept aside, never silently dropped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [], []
        events: list[SpooledEvent] = []
        unreadable: list[str] = []
        for line in text.split("\n"):
            if not line.strip():
                continue
            try:
                events.append(SpooledEvent.from_json(line))
            except (ValueError, KeyError, TypeError):
                unreadable.append(line)
        return events, unreadable

    def pending(self) -> bool:
        """Whether the spool holds events to replay. Called by the outbox on every round, so
        the file is looked at no more than once per :attr:`CHECK_SECONDS`: a ``stat`` on the
        event loop's thread waits for the interpreter lock, which the store's threads hold."""
        if self._appended:
            return True
        now = time.monotonic()
        if now - self._checked_at >= self.CHECK_SECONDS:
            self._checked_at = now
            try:
                self._seen_pending = self.path.stat().st_size > 0
            except FileNotFoundError:
                self._seen_pending = False
        return self._seen_pending

    async def drain(self, store: ConsentStore, follow_up: FollowUp | None = None) -> int:
        """Replay every spooled event into the store, in order; then empty the spool.
        Raises :class:`gateway.errors.StoreUnavailable` (leaving the spool as it was) when the
        store is still down. Holds the file lock throughout, so no process appends meanwhile."""
        async with self._lock:
            fd = await asyncio.to_thread(self._lock_file)
            try:
                events, unreadable = await asyncio.to_thread(self.read)
                for event in events:
                    await store.record_inbound(
                        event.provider,
                        event.message_id,
                        event.received_us,
                        event.changes,
                        event.outbox,
                        follow_up,
                    )
                if unreadable:
                    await asyncio.to_thread(self._quarantine, unreadable)
                await asyncio.to_thread(self._truncate, fd)
                self._appended = self._seen_pending = False
                return len(events)
            finally:
                os.close(fd)

    def _quarantine(self, lines: list[str]) -> None:
        """Lines that are not events go to ``<spool>.unreadable`` (fsync'd) for a person to
        look at, before the spool is emptied."""
        log.error("spool: %d unreadable lines kept in %s.unreadable", len(lines), self.path)
        fd = os.open(f"{self.path}.unreadable", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, "".join(line + "\n" for line in lines).encode("utf-8", "replace"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _lock_file(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @staticmethod
    def _truncate(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.fsync(fd)
