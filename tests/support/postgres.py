"""PostgreSQL for tests: a server, and a fresh schema per test on it.

:func:`server` yields the base URL of a reachable PostgreSQL: the one named by
``STOPGATE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, trust
auth, the CI server) when it answers, else a throwaway cluster started here with the installed
binaries (``initdb``/``pg_ctl`` from PATH, ``pg_config --bindir`` or
``/usr/lib/postgresql/*/bin``), run as the ``postgres`` user when we are root (``initdb`` refuses
root), on a free port, with its data in a temporary directory removed afterwards. With no
binaries at all it raises :class:`NoPostgres`; :func:`server_or_skip` skips a test on that outside
CI and fails it in CI (``CI=true``).

:func:`schema` creates a randomly named schema on that server and yields a store URL whose
``schema`` option puts every table there, so tests never see each other and can run again and
again; the schema is dropped afterwards.

asyncpg runs here on a private event loop in a helper thread, so these context managers can be
used from synchronous fixtures without touching the test's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support.ci import in_ci
from tests.support.servers import free_port

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL_VARIABLE = "STOPGATE_TEST_POSTGRES_URL"

T = TypeVar("T")


class NoPostgres(RuntimeError):
    """No server answers and no PostgreSQL binaries are installed to start one."""


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop in a helper thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _probe(url: str, timeout: float = 3.0) -> str | None:
    """None when ``url`` accepts a connection, else why not. A missing database is created."""

    async def probe() -> str | None:
        try:
            conn = await asyncpg.connect(url, timeout=timeout)
        except asyncpg.InvalidCatalogNameError:
            parts = urlsplit(url)
            database = parts.path.lstrip("/")
            admin = urlunsplit(parts._replace(path="/postgres"))
            conn = await asyncpg.connect(admin, timeout=timeout)
            try:
                await conn.execute(f'CREATE DATABASE "{database}"')
            finally:
                await conn.close()
            return None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"{type(exc).__name__}: {exc}"
        await conn.close()
        return None

    return run_async(probe)


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest major version first."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(bindir))

    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else 0

    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    candidates += [Path(p) for p in versioned]
    candidates.append(Path("/usr/local/pgsql/bin"))
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


@contextlib.contextmanager
def throwaway_cluster(bindir: Path) -> Iterator[str]:
    """initdb + pg_ctl start on a free port; yields its URL; stops it and removes its files."""
    root = Path(tempfile.mkdtemp(prefix="stopgate-pg-"))
    data = root / "data"
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(
                "running as root and there is no 'postgres' user to run initdb as"
                " (initdb refuses root): create one, or run the tests as another user"
            ) from None
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
            check=False,
            **run_as,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        # fsync off: a throwaway cluster never survives a crash of its own, and no test
        # crashes the server (the durability test kills the client).
        settings = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            settings,
            "-w",
            "-t",
            "60",
            "start",
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The base URL of a PostgreSQL server to test against (see the module docstring)."""
    url = os.environ.get(URL_VARIABLE, DEFAULT_URL)
    problem = _probe(url)
    if problem is None:
        yield url
        return
    bindir = find_binaries()
    if bindir is None:
        raise NoPostgres(
            f"no PostgreSQL server at {url} ({problem}) and no PostgreSQL binaries"
            " (initdb, pg_ctl) to start one: install postgresql, or set " + URL_VARIABLE
        )
    with throwaway_cluster(bindir) as started:
        yield started


@contextlib.contextmanager
def server_or_skip() -> Iterator[str]:
    """:func:`server` for a test or a fixture: where no server can be had, the test is skipped
    - and in CI (``CI=true``) failed, so a PostgreSQL test never quietly goes missing there."""
    try:
        with server() as url:
            yield url
    except NoPostgres as exc:
        if in_ci():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def with_option(url: str, name: str, value: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{name}={value}"


@contextlib.contextmanager
def schema(base_url: str) -> Iterator[str]:
    """A fresh schema on the server; yields a store URL using it, drops it afterwards."""
    name = f"t_{secrets.token_hex(6)}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(base_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(lambda: execute(f'CREATE SCHEMA "{name}"'))
    try:
        yield with_option(base_url, "schema", name)
    finally:
        run_async(lambda: execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
