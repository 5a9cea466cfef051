"""The ``stopgate`` command (DESIGN §4.1)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO, TypeVar

from gateway import logs, native
from gateway.config import Settings, load_settings, mask_url
from gateway.errors import BadRequest, ConfigError, StopgateError
from gateway.store import store_from_url
from gateway.store.base import ConsentChange, ConsentStore, ImportCounts, RecordQuery

log = logging.getLogger("stopgate")

IMPORT_BATCH = 10_000
"""Rows per store write of an import: big enough that a write's round trips are few, small
enough that memory stays flat (two batches are held: one being written, one being read)."""
_IMPORT_YIELD_EVERY = 100
"""Rows read between chances for the batch in flight to make progress (about 1.5 ms of reading:
each of a write's round trips waits for the next chance, and the write is an import's longer
half, so a coarser grain leaves the database idle)."""


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(config_file=getattr(args, "config", None), overrides=overrides)


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import create_app

    settings = _settings(args, listen=args.listen, store=args.store, workers=args.workers)
    # Now that the secrets are known, every line is scrubbed of them; JSON lines by default.
    logs.configure_for(settings, default_format="json")
    host, port = settings.listen_host_port
    if settings.workers > 1 and not args.reuse_port:
        from gateway.workers import serve_workers

        child_args = ["--workers", "1", "--listen", settings.listen, "--store", settings.store]
        if args.config:
            child_args += ["--config", args.config]
        log.info("stopgate serving on %s:%d with %d workers", host, port, settings.workers)
        return serve_workers(settings.workers, child_args)
    log.info("stopgate serving on %s:%d, settings %s", host, port, settings.redacted())
    log.info("send path: %s", native.STATE.describe())
    from gateway.server import serve

    _run_fast(serve(create_app(settings), host, port, reuse_port=args.reuse_port))
    return 0


_T = TypeVar("_T")


def _run_fast(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on a uvloop loop when uvloop is installed (the ``fast`` extra: a
    cheaper event loop for the same code), without changing the process's event loop policy (a
    command may run inside a host process, e.g. a test)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _demo() -> int:
    from gateway.demo import run_demo

    return run_demo()


def _carrier_sim(args: argparse.Namespace) -> int:
    from gateway.carriersim.app import run_carrier_sim

    listen = args.listen or os.environ.get("STOPGATE_CARRIER_SIM_LISTEN", "127.0.0.1:8090")
    gateway = args.gateway or os.environ.get("STOPGATE_CARRIER_SIM_GATEWAY")
    host, _, port = listen.rpartition(":")
    run_carrier_sim(host or "127.0.0.1", int(port), gateway)
    return 0


async def _with_store(settings: Settings) -> ConsentStore:
    store = store_from_url(settings.store)
    await store.open()
    return store


class _Progress:
    """A one-line progress report on stderr: rows read, rows rejected, rows per second."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._started = time.monotonic()
        self._last = 0.0

    def show(self, rows: int, rejected: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.5:
            return
        self._last = now
        rate = rows / max(now - self._started, 1e-9)
        print(
            f"\r{self._name}: {rows:,} rows, {rejected:,} rejected, {rate:,.0f} rows/s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def done(self) -> None:
        print(file=sys.stderr)


def _consents_import(args: argparse.Namespace) -> int:
    from gateway.consent_csv import RejectedRow, parse_rows
    from gateway.events import follow_up_for

    settings = _settings(args, store=args.store)

    async def run(handle: TextIO) -> tuple[int, int, list[RejectedRow]]:
        store = await _with_store(settings)
        follow_up = follow_up_for(settings)
        applied = skipped = seen = 0
        rejected: list[RejectedRow] = []
        batch: list[ConsentChange] = []
        progress = _Progress(args.file) if sys.stderr.isatty() or args.progress else None
        # What is loaded by now (modules, number metadata) lives as long as the process: out of
        # the collector's way, the full collections a long import triggers stay cheap (they
        # would otherwise walk all of it again and again).
        gc.freeze()
        # The next batch is read while the previous one is written (the database works
        # meanwhile); batches are still written one after another, in file order.
        writing: asyncio.Task[ImportCounts] | None = None

        async def written() -> None:
            nonlocal applied, skipped, writing
            if writing is None:
                return
            counts = await writing
            writing = None
            applied += counts.applied
            skipped += counts.skipped
            if progress is not None:
                progress.show(seen, len(rejected))

        async def flush() -> None:
            nonlocal batch, writing
            await written()
            writing = asyncio.ensure_future(store.import_changes(batch, follow_up))
            batch = []

        try:
            for row in parse_rows(handle, region=settings.default_region, actor="import"):
                seen += 1
                if isinstance(row, RejectedRow):
                    rejected.append(row)
                elif len(batch) < IMPORT_BATCH:
                    batch.append(row)
                else:
                    await flush()
                    batch.append(row)
                if writing is not None and seen % _IMPORT_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if batch:
                await flush()
            await written()
        finally:
            if writing is not None:
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
            await store.close()
            if progress is not None:
                progress.done()
        return applied, skipped, rejected

    try:
        # Undecodable bytes become lone surrogates, so their row is rejected by line number
        # instead of the whole import failing.
        with open(args.file, encoding="utf-8-sig", newline="", errors="surrogateescape") as handle:
            # The CLI's loop has nothing else to serve, so reading the file inline blocks no one.
            applied, skipped, rejected = _run_fast(run(handle))
    except OSError as exc:
        raise StopgateError(f"cannot read {args.file}: {exc}") from None
    for row in rejected[:100]:
        print(f"line {row.line}: {row.reason}", file=sys.stderr)
    if len(rejected) > 100:
        print(f"... and {len(rejected) - 100} more rejected lines", file=sys.stderr)
    print(
        f"imported {applied} records, {skipped} older than what the store holds, "
        f"{len(rejected)} rejected"
    )
    return 1 if rejected else 0


def _write_output(path: str | None, run: Callable[[TextIO], Coroutine[Any, Any, None]]) -> int:
    """Run an export into ``path`` (a new file) or, without one, standard output."""
    if path:
        with open(path, "w", encoding="utf-8", newline="") as out:
            asyncio.run(run(out))
    else:
        asyncio.run(run(sys.stdout))
    return 0


def _consents_export(args: argparse.Namespace) -> int:
    from gateway.consent_csv import export_lines

    settings = _settings(args, store=args.store)

    async def run(out: TextIO) -> None:
        store = await _with_store(settings)
        try:
            after = None
            first = True
            while True:
                page = await store.list_records(RecordQuery(), after=after, limit=5000)
                lines = export_lines(page)
                header = next(lines)
                if first:
                    out.write(header)
                    first = False
                for line in lines:
                    out.write(line)
                if len(page) < 5000:
                    break
                after = (page[-1].to_key, page[-1].from_key)
        finally:
            await store.close()

    return _write_output(args.output, run)


def _consents_check(args: argparse.Namespace) -> int:
    from gateway.consent_index import ConsentIndex
    from policy.consent import applicable_from_keys, decide, default_for, explain, parse_time
    from policy.numbers import InvalidAddress, business_key, customer_key

    settings = _settings(args, store=args.store)
    region = settings.default_region
    try:
        from_key = business_key(args.sender, region)
        to_key = customer_key(args.recipient, region)
    except InvalidAddress as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    try:
        now_us = parse_time(args.at) if args.at else time.time_ns() // 1000
    except ValueError as exc:
        raise StopgateError(f"--at: {exc}") from None

    async def run() -> str:
        store = await _with_store(settings)
        try:
            index = ConsentIndex(store, 1)
            index.configure_brands(settings.brands, settings.consent_defaults)
            service = await store.service_of(from_key)
            keys = applicable_from_keys(
                from_key, None, number_service=service, brand_of=index.brand_of
            )
            found = await store.get_records(to_key, keys)
            suppressions = await store.suppressions_of(to_key)
            senders = (from_key, service) if service is not None else (from_key,)
            rules = await _sending_rule_lines(settings, store, senders, to_key, now_us)
        finally:
            await store.close()
        default = default_for(keys, index.defaults, settings.consent_default)
        decision = decide((found.get(k) for k in keys), default, suppressions)
        lines = [f"pair {from_key} -> {to_key}"]
        for key in keys:
            record = found.get(key)
            label = "every business number (*)" if key == "*" else key
            lines.append(
                f"  record for {label}: "
                + (f"{record.status.value} ({record.source.value})" if record else "none")
            )
        for entry in suppressions:
            lines.append(f"  on suppression list {entry.list_name!r} ({entry.kind.value})")
        lines.append(explain(decision, default))
        lines.extend(rules)
        return "\n".join(lines)

    print(asyncio.run(run()))
    return 0


async def _sending_rule_lines(
    settings: Settings, store: ConsentStore, senders: tuple[str, ...], to_key: str, now_us: int
) -> list[str]:
    """How quiet hours and frequency caps would treat a marketing send now (nothing when both
    are off), decided by the same policy functions as the send path."""
    import datetime as dt

    from policy.categories import Category, category_of
    from policy.frequency_caps import admits
    from policy.quiet_hours import decide_quiet_hours, minute_of_day
    from policy.us_states import state_of

    quiet, caps = settings.quiet_hours, settings.frequency_caps
    if not quiet.active and not caps.enabled:
        return []
    category = category_of(None, senders, settings.categories, settings.category_default)
    lines = [f"  category: {category.value} (without an X-Stopgate-Category header)"]
    exempt = "" if category is Category.MARKETING else " (not applied: transactional)"
    state = state_of(to_key)
    where = f" ({state})" if state else ""
    rule = quiet.rule_for(senders)
    if rule.enabled:
        now = dt.datetime.fromtimestamp(now_us / 1_000_000, dt.UTC)
        verdict = decide_quiet_hours(rule, to_key, state, now, quiet.fallback_zone)
        clocks = [(zone, *divmod(minute_of_day(zone, now), 60)) for zone in verdict.zones]
        local = ", ".join(f"{zone} {hour:02d}:{minute:02d}" for zone, hour, minute in clocks)
        lines.append(
            f"  quiet hours{exempt}: window {verdict.window}{where}; recipient's local time: "
            f"{local or 'unknown time zone'}; "
            + ("inside the window" if verdict.allowed else f"refused now: {verdict.explain()}")
        )
    cap = caps.cap_for(to_key)
    if caps.enabled and cap is None:
        lines.append(f"  frequency cap{exempt}: none for this recipient{where}")
    elif cap is not None:
        counted = await store.send_slot_times(to_key, now_us - cap.window_us)
        lines.append(
            f"  frequency cap{exempt}: {cap}{where}; {len(counted)} counted in the window; "
            + (
                "one more is allowed"
                if admits(counted, now_us, cap)
                else "refused now: the cap is reached (frequency-cap)"
            )
        )
    return lines


def _suppressions_import(args: argparse.Namespace) -> int:
    from gateway.consent_csv import parse_numbers
    from gateway.suppressions import ImportOutcome, import_list
    from policy.consent import SuppressionKind, parse_time

    settings = _settings(args, store=args.store)
    name = _list_name(args.name)
    try:
        listed_us = parse_time(args.as_of) if args.as_of else time.time_ns() // 1000
    except ValueError as exc:
        raise StopgateError(f"--as-of: {exc}") from None
    kind = SuppressionKind(args.kind)
    progress = _Progress(args.file) if sys.stderr.isatty() or args.progress else None

    async def run(handle: TextIO) -> ImportOutcome:
        store = await _with_store(settings)
        try:
            return await import_list(
                store,
                name,
                kind,
                parse_numbers(handle, region=settings.default_region),
                listed_us=listed_us,
                note=args.reason,
                progress=progress.show if progress is not None else None,
            )
        finally:
            await store.close()
            if progress is not None:
                progress.done()

    started = time.monotonic()
    try:
        with open(args.file, encoding="utf-8-sig", newline="") as handle:
            outcome = asyncio.run(run(handle))
    except OSError as exc:
        raise StopgateError(f"cannot read {args.file}: {exc}") from None
    elapsed = time.monotonic() - started
    for row in outcome.first_rejections:
        print(f"line {row.line}: {row.reason}", file=sys.stderr)
    if outcome.rejected > len(outcome.first_rejections):
        more = outcome.rejected - len(outcome.first_rejections)
        print(f"... and {more} more rejected lines", file=sys.stderr)
    refresh = outcome.refresh
    assert refresh is not None
    print(
        f"suppression list {name!r} ({kind.value}): {refresh.list.members} numbers, "
        f"{refresh.added} added, {refresh.released} released, {outcome.rejected} rejected "
        f"({outcome.rows / max(elapsed, 1e-9):,.0f} rows/s)"
    )
    return 1 if outcome.rejected else 0


def _suppressions_list(args: argparse.Namespace) -> int:
    import csv

    from gateway.consent_csv import neutralise_formula
    from gateway.store.base import SuppressionList
    from policy.consent import format_time

    settings = _settings(args, store=args.store)

    async def run() -> list[SuppressionList]:
        store = await _with_store(settings)
        try:
            return await store.suppression_lists()
        finally:
            await store.close()

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("NAME", "KIND", "MEMBERS", "AS_OF", "IMPORTED", "REASON"))
    for listed in asyncio.run(run()):
        writer.writerow(
            (
                listed.name,
                listed.kind.value,
                listed.members,
                format_time(listed.listed_us),
                format_time(listed.imported_us),
                neutralise_formula(listed.note or ""),
            )
        )
    return 0


def _list_name(raw: str) -> str:
    from gateway.suppressions import check_list_name

    try:
        return check_list_name(raw)
    except BadRequest as exc:
        raise StopgateError(exc.message) from None


def _suppressions_export(args: argparse.Namespace) -> int:
    settings = _settings(args, store=args.store)
    name = _list_name(args.name)

    async def run(out: TextIO) -> None:
        store = await _with_store(settings)
        try:
            out.write("TO\n")
            after = None
            while True:
                page = await store.suppression_members(name, after=after, limit=5000)
                out.writelines(f"{key}\n" for key in page)
                if len(page) < 5000:
                    break
                after = page[-1]
        finally:
            await store.close()

    return _write_output(args.output, run)


def _suppressions_drop(args: argparse.Namespace) -> int:
    settings = _settings(args, store=args.store)
    name = _list_name(args.name)

    async def run() -> int:
        store = await _with_store(settings)
        try:
            return await store.drop_suppression_list(name)
        finally:
            await store.close()

    released = asyncio.run(run())
    print(f"suppression list {name!r} dropped: {released} numbers released")
    return 0


def _ringcentral_subscribe(args: argparse.Namespace) -> int:
    import aiohttp

    from gateway import subscriptions, upstream
    from gateway.ringcentral_login import LoginUnavailable, RingCentralLogin
    from gateway.upstream_lean import LeanClient

    settings = _settings(args, store=args.store, public_url=args.public_url)

    async def run() -> subscriptions.Subscription:
        store = await _with_store(settings)
        session = upstream.make_client_session(settings)
        lean = LeanClient(settings)
        try:
            login = RingCentralLogin(settings, session, lean)
            return await subscriptions.create(login, settings, store)
        except LoginUnavailable as exc:
            raise ConfigError(str(exc)) from None
        except aiohttp.ClientError as exc:
            raise StopgateError(f"RingCentral unreachable: {exc}") from None
        finally:
            await lean.close()
            await session.close()
            await store.close()

    subscription = asyncio.run(run())
    print(
        f"subscription {subscription.id} -> {subscription.address}, "
        f"expires in {subscription.expires_in} s; gateways on this store renew it"
    )
    return 0


def _consents_history(args: argparse.Namespace) -> int:
    from policy.consent import format_time
    from policy.numbers import InvalidAddress, customer_key, display_key

    settings = _settings(args, store=args.store)
    try:
        to_key = customer_key(args.recipient, settings.default_region)
    except InvalidAddress as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2

    async def run() -> list[str]:
        store = await _with_store(settings)
        lines: list[str] = []
        after = None
        try:
            while True:
                page = await store.history(to_key=to_key, from_key=None, after_id=after, limit=500)
                for entry in page:
                    old = entry.old_status.value if entry.old_status else "-"
                    new = entry.new_status.value if entry.new_status else "Deleted"
                    lines.append(
                        f"{format_time(entry.modified_us)}  {display_key(entry.from_key):>16}"
                        f"  {old:>6} -> {new:<7}  {entry.source.value:<9}  {entry.actor}"
                        + (f"  ({entry.note})" if entry.note else "")
                    )
                if len(page) < 500:
                    return lines
                after = page[-1].id
        finally:
            await store.close()

    lines = asyncio.run(run())
    print(f"history of {to_key}: {len(lines)} changes")
    for line in lines:
        print(line)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Create or migrate the store's schema (``serve`` does it at start-up too)."""
    settings = _settings(args, store=args.store)

    async def run() -> None:
        store = await _with_store(settings)
        await store.close()

    asyncio.run(run())
    print(f"store {mask_url(settings.store)} is at the current schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stopgate", description="SMS consent gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML settings file (STOPGATE_CONFIG)")
    serve.add_argument("--listen", help="HOST:PORT (STOPGATE_LISTEN, default 127.0.0.1:8080)")
    serve.add_argument(
        "--store", help="store URL (STOPGATE_STORE, default sqlite:///./stopgate.db)"
    )
    serve.add_argument("--workers", type=int, help="processes (STOPGATE_WORKERS, default 1)")
    # A worker of `--workers N` binds the shared port with SO_REUSEPORT (internal).
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="create or migrate the store's schema")
    migrate.add_argument("--config", help="TOML settings file (STOPGATE_CONFIG)")
    migrate.add_argument("--store", help="store URL (STOPGATE_STORE)")
    migrate.set_defaults(run=_migrate)

    sim = commands.add_parser("carrier-sim", help="run the carrier simulator")
    sim.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:8090)")
    sim.add_argument("--gateway", help="gateway URL inbound webhooks are delivered to")
    sim.set_defaults(run=_carrier_sim)

    demo = commands.add_parser(
        "demo", help="run the gateway in front of the carrier simulator (SQLite store)"
    )
    demo.set_defaults(run=lambda args: _demo())

    consents = commands.add_parser("consents", help="bulk consent operations")
    actions = consents.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("import", _consents_import, "load a CSV (either RingCentral layout)"),
        ("export", _consents_export, "write every record as CSV"),
        ("check", _consents_check, "explain one pair's decision"),
        ("history", _consents_history, "every change of one customer's consent"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", help="TOML settings file (STOPGATE_CONFIG)")
        action.add_argument("--store", help="store URL (STOPGATE_STORE)")
        action.set_defaults(run=handler)
        if name == "import":
            action.add_argument("file")
            action.add_argument(
                "--progress", action="store_true", help="report progress on stderr (default: tty)"
            )
        elif name == "export":
            action.add_argument("--output", "-o", help="file to write (default: stdout)")
        elif name == "history":
            action.add_argument("recipient", metavar="TO")
        else:
            action.add_argument("sender", metavar="FROM")
            action.add_argument("recipient", metavar="TO")
            action.add_argument(
                "--at", help="decide quiet hours and caps at this time (ISO 8601; default: now)"
            )
    suppressions = commands.add_parser("suppressions", help="suppression lists (do-not-call)")
    lists = suppressions.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("import", _suppressions_import, "replace a list's members with a file's numbers"),
        ("list", _suppressions_list, "every list, its kind and size (CSV)"),
        ("export", _suppressions_export, "a list's members (CSV)"),
        ("drop", _suppressions_drop, "remove a list, releasing its numbers"),
    ):
        action = lists.add_parser(name, help=text)
        action.add_argument("--config", help="TOML settings file (STOPGATE_CONFIG)")
        action.add_argument("--store", help="store URL (STOPGATE_STORE)")
        action.set_defaults(run=handler)
        if name != "list":
            action.add_argument("name", metavar="NAME")
        if name == "import":
            action.add_argument("file", metavar="FILE")
            action.add_argument(
                "--kind",
                choices=("internal", "dnc", "reassigned"),
                default="internal",
                help="internal: always blocks (default); dnc: a customer's OptIn overrides it;"
                " reassigned: only an OptIn newer than --as-of overrides it",
            )
            action.add_argument("--as-of", help="the list's date (ISO 8601; default: now)")
            action.add_argument("--reason", help="why these numbers are suppressed (kept, shown)")
            action.add_argument(
                "--progress", action="store_true", help="report progress on stderr (default: tty)"
            )
        elif name == "export":
            action.add_argument("--output", "-o", help="file to write (default: stdout)")
    ringcentral = commands.add_parser("ringcentral", help="RingCentral set-up")
    rc_actions = ringcentral.add_subparsers(dest="action", required=True)
    subscribe = rc_actions.add_parser(
        "subscribe", help="create the webhook subscription that points inbound SMS at Stopgate"
    )
    subscribe.add_argument("--config", help="TOML settings file (STOPGATE_CONFIG)")
    subscribe.add_argument("--store", help="store URL (STOPGATE_STORE)")
    subscribe.add_argument("--public-url", help="base URL RingCentral calls (STOPGATE_PUBLIC_URL)")
    subscribe.set_defaults(run=_ringcentral_subscribe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Until a command has loaded its settings: the environment's level and format (text unless
    # asked otherwise); ``serve`` configures again with its settings (JSON by default).
    fmt = os.environ.get("STOPGATE_LOG_FORMAT") or "auto"
    try:
        logs.configure(
            level=os.environ.get("STOPGATE_LOG_LEVEL") or "INFO",
            fmt="text" if fmt == "auto" else fmt,
        )
    except ValueError as exc:
        print(f"stopgate: configuration error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"stopgate: configuration error: {exc}", file=sys.stderr)
        return 2
    except StopgateError as exc:
        print(f"stopgate: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
