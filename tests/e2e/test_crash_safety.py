"""``kill -9`` at random moments during a mixed load: nothing acknowledged is lost, no batch is
half-applied, the outbox resumes.

Each round runs, against one ``stopgate serve`` on an SQLite store, at the same time: an app
sending in both dialects, customers texting STOP through the carrier simulator (Twilio and
RingCentral in turn), an operator's script PATCHing consent records in batches of
:data:`PATCH_BATCH`, and ``stopgate consents import`` loading a CSV into the same store. At a
random moment (seeded; the seed is printed) the gateway and the import are SIGKILLed together;
the next round starts a new gateway on the same files, which is the restart under test.

After every restart, from the outside (the consent export and the carrier's delivered log):

- every STOP the carrier saw acknowledged is recorded and enforced;
- every PATCH answered 200 is there entirely; a PATCH cut off by the kill is there entirely or
  not at all;
- the import's rows present are whole batches (``IMPORT_BATCH``), a prefix of the file;
- every acknowledged RingCentral STOP gets its confirmation (the outbox resumes), once.

The STOP-burst crash (200 concurrent STOPs) and the in-flight confirmation are covered in
``test_inbound.py``; this is the mixed-load counterpart.
"""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from gateway.cli import IMPORT_BATCH
from tests.e2e.conftest import (
    ADMIN_TOKEN,
    BUSINESS,
    CONSENTS,
    HTTP_TIMEOUT,
    REPO,
    Stack,
    clean_environment,
    reported,
    sqlite_url,
    stopgate_command,
)
from tests.e2e.test_inbound import Gateway, fictional, inbound_gateway, wait_until

pytestmark = pytest.mark.e2e

ROUNDS = 3
PATCH_BATCH = 40
IMPORT_ROWS = 6 * IMPORT_BATCH
KILL_WINDOW = (0.0, 2.0)
"""Seconds after the import's first committed batch within which the SIGKILL lands."""
IMPORT_START_WAIT = 60.0
CONFIRMATION_WAIT = 15.0
IMPORT_SENDERS = [f"+1650555{n:04d}" for n in range(170, 170 + ROUNDS)]
PATCH_SENDER = "+16505550160"
# Area codes in service, one per round: the rows of each PATCH and import stay apart.
IMPORT_AREAS = ("213", "214", "215")
PATCH_AREAS = ("310", "312", "313")


def seed() -> int:
    return int(os.environ.get("STOPGATE_CRASH_SEED", str(time.time_ns() % 100_000)))


def bulk_numbers(area: str, count: int, offset: int = 0) -> list[str]:
    """Valid, distinct US numbers nobody texts (imports and PATCHes only)."""
    return [f"+1{area}234{n:04d}" for n in range(offset, offset + count)]


@dataclass
class Round:
    number: int
    stops_acked: list[tuple[str, str]] = field(default_factory=list)
    stops_cut: list[tuple[str, str]] = field(default_factory=list)
    patches_acked: list[list[str]] = field(default_factory=list)
    patches_cut: list[list[str]] = field(default_factory=list)
    sends: list[int] = field(default_factory=list)
    import_rows: list[str] = field(default_factory=list)
    import_exit: int | None = None
    killed_after: float = 0.0


class MixedLoad:
    """The four writers of one round, each a thread, until :meth:`halt`."""

    def __init__(self, gw: Gateway, sim_url: str, record: Round, stop_customers: Iterator[str]):
        self.gw = gw
        self.sim_url = sim_url
        self.record = record
        self.stop_customers = stop_customers
        self.halted = threading.Event()
        self.threads = [
            threading.Thread(target=self._sends, daemon=True),
            threading.Thread(target=self._stops, daemon=True),
            threading.Thread(target=self._patches, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def halt(self) -> None:
        self.halted.set()
        for thread in self.threads:
            thread.join(HTTP_TIMEOUT * 3)

    def _sends(self) -> None:
        me = Gateway(self.gw.process, self.sim_url, self.gw.store, self.gw.spool)
        me._rc_token = self.gw.rc_token()
        customers = list(fictional("503"))
        n = 0
        while not self.halted.is_set():
            try:
                provider = "twilio" if n % 2 == 0 else "ringcentral"
                status = me.send(provider, customers[n % len(customers)]).status_code
            except requests.RequestException:
                status = -1
            self.record.sends.append(status)
            n += 1
        me.http.close()

    def _stops(self) -> None:
        n = 0
        while not self.halted.is_set():
            provider = "twilio" if n % 2 == 0 else "ringcentral"
            customer = next(self.stop_customers, None)
            if customer is None:
                return
            spec = {
                "provider": provider,
                "from": customer,
                "to": BUSINESS,
                "text": "STOP",
                "gateway": self.gw.url,
            }
            try:
                reply = requests.post(f"{self.sim_url}/sim/inbound", json=spec, timeout=30)
                acked = reply.status_code == 200 and 200 <= reply.json().get("status", 0) < 300
            except requests.RequestException:
                acked = False
            (self.record.stops_acked if acked else self.record.stops_cut).append(
                (provider, customer)
            )
            n += 1
            # Paced, so the customers last through every round whatever the import's length.
            self.halted.wait(0.05)

    def _patches(self) -> None:
        n = 0
        # bulk_numbers has 10,000 numbers an area: the loop ends before it would run out.
        while not self.halted.is_set() and (n + 1) * PATCH_BATCH <= 10_000:
            batch = bulk_numbers(PATCH_AREAS[self.record.number], PATCH_BATCH, n * PATCH_BATCH)
            body = {
                "records": [{"from": PATCH_SENDER, "to": to, "optStatus": "OptOut"} for to in batch]
            }
            try:
                reply = requests.patch(
                    f"{self.gw.url}{CONSENTS}",
                    json=body,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=HTTP_TIMEOUT,
                )
                acked = reply.status_code == 200
            except requests.RequestException:
                acked = False
            (self.record.patches_acked if acked else self.record.patches_cut).append(batch)
            n += 1
            self.halted.wait(0.02)


def watch_progress(importer: subprocess.Popen[bytes], importing: threading.Event) -> None:
    """Set ``importing`` at the import's first progress report (or its exit)."""
    assert importer.stderr is not None
    while chunk := os.read(importer.stderr.fileno(), 4096):
        if b"rows" in chunk:
            importing.set()
    importing.set()


def write_import(path: Path, sender: str, rows: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("from,to,status,source\n")
        for to in rows:
            handle.write(f"{sender},{to},OptOut,Api\n")


def export(store: Path) -> set[tuple[str, str, str]]:
    done = subprocess.run(
        stopgate_command("consents", "export", "--store", sqlite_url(store)),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_environment(STOPGATE_LOG_LEVEL="WARNING"),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    return {(r[0], r[1], r[2]) for r in rows[1:]}


def check_round(record: Round, present: set[tuple[str, str, str]], gw: Gateway) -> list[str]:
    """What this round lost or half-applied (empty: nothing)."""
    problems: list[str] = []
    for provider, customer in record.stops_acked:
        if (BUSINESS, customer, "OptOut") not in present:
            problems.append(f"acknowledged {provider} STOP of {customer} missing")
        elif not gw.is_refused(provider, customer):
            problems.append(f"acknowledged {provider} STOP of {customer} not enforced")
    for batch in record.patches_acked:
        missing = [to for to in batch if (PATCH_SENDER, to, "OptOut") not in present]
        if missing:
            problems.append(f"acknowledged PATCH lacks {len(missing)} of {len(batch)} records")
    for batch in record.patches_cut:
        found = sum((PATCH_SENDER, to, "OptOut") in present for to in batch)
        if found not in (0, len(batch)):
            problems.append(f"cut-off PATCH half-applied: {found} of {len(batch)}")
    sender = IMPORT_SENDERS[record.number]
    imported = [(sender, to, "OptOut") in present for to in record.import_rows]
    count = sum(imported)
    if imported != [True] * count + [False] * (len(imported) - count):
        problems.append("imported rows are not a prefix of the file")
    if count % IMPORT_BATCH and count != len(imported):
        problems.append(f"import half-applied: {count} rows (batches of {IMPORT_BATCH})")
    if record.import_exit == 0 and count != len(imported):
        problems.append(f"import reported success but only {count} rows are there")
    return problems


def test_sigkill_during_mixed_load_loses_no_acknowledged_write(
    stack: Stack, tmp_path: Path
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    store, spool = tmp_path / "crash-mixed.db", tmp_path / "crash-mixed-spool.jsonl"
    # Enough distinct customers for every round however long the import keeps it going (a
    # customer texts STOP once, so each confirmation belongs to one acknowledged STOP).
    stop_areas = ("480", "484", "501", "502", "505", "507", "508", "509", "510", "512")
    stop_customers = (n for area in stop_areas for n in fictional(area))
    rounds: list[Round] = []
    report: list[str] = [f"seed {chosen} (STOPGATE_CRASH_SEED to repeat)"]

    def start(name: str) -> tuple[Gateway, Callable[[], None]]:
        process = inbound_gateway(name, stack.sim_url, store, spool, tmp_path)
        process.start()
        context = reported(process)
        context.__enter__()
        gw = Gateway(process, stack.sim_url, store, spool)

        def done() -> None:
            gw.http.close()
            process.stop()
            context.__exit__(None, None, None)

        return gw, done

    gw, close = start("gateway-crash-mixed-0")
    try:
        for number in range(ROUNDS):
            record = Round(number)
            rounds.append(record)
            record.import_rows = bulk_numbers(IMPORT_AREAS[number], IMPORT_ROWS)
            source = tmp_path / f"import-{number}.csv"
            write_import(source, IMPORT_SENDERS[number], record.import_rows)
            gw.rc_token()  # logged in before the load
            load = MixedLoad(gw, stack.sim_url, record, stop_customers)
            importer = subprocess.Popen(
                stopgate_command(
                    "consents", "import", str(source), "--progress", "--store", sqlite_url(store)
                ),
                cwd=REPO,
                env=clean_environment(STOPGATE_LOG_LEVEL="WARNING"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            started = time.monotonic()
            load.start()
            # The kill lands at a random moment once the import has committed a batch or more
            # (its progress line), unless it ends first: then it must be there entirely.
            importing = threading.Event()
            watcher = threading.Thread(
                target=watch_progress, args=(importer, importing), daemon=True
            )
            watcher.start()
            importing.wait(IMPORT_START_WAIT)
            time.sleep(rng.uniform(*KILL_WINDOW))
            importer.kill()
            assert gw.process.kill() == -9
            record.killed_after = time.monotonic() - started
            record.import_exit = importer.wait(10)
            watcher.join(10)
            assert importer.stderr is not None
            importer.stderr.close()
            load.halt()
            close()

            gw, close = start(f"gateway-crash-mixed-{number + 1}")
            present = export(store)
            problems = check_round(record, present, gw)
            imported = sum(
                (IMPORT_SENDERS[number], to, "OptOut") in present for to in record.import_rows
            )
            report.append(
                f"round {number}: SIGKILL after {record.killed_after:.2f} s;"
                f" sends {len(record.sends)}, STOPs acked {len(record.stops_acked)}"
                f" / cut {len(record.stops_cut)}, PATCH batches acked"
                f" {len(record.patches_acked)} / cut {len(record.patches_cut)},"
                f" import rows present {imported} of {IMPORT_ROWS} (exit {record.import_exit})"
            )
            assert problems == [], "\n".join(report + problems)

        rc_acked = [c for r in rounds for p, c in r.stops_acked if p == "ringcentral"]

        def unconfirmed() -> list[str]:
            return [c for c in rc_acked if not gw.confirmations(c)]

        wait_until(lambda: not unconfirmed(), CONFIRMATION_WAIT, "every confirmation")
        twice = [c for c in rc_acked if len(gw.confirmations(c)) > 1]
        report.append(
            f"RingCentral STOPs acknowledged: {len(rc_acked)}, all confirmed, twice: {len(twice)}"
        )
        print("\ncrash safety (mixed load):\n  " + "\n  ".join(report))
        assert twice == []
        assert all(r.stops_acked and r.patches_acked for r in rounds), report
    finally:
        close()
