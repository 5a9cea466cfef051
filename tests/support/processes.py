"""Run a server as a real subprocess for end-to-end tests: start, wait until it answers HTTP,
keep its output in files, and stop it (SIGTERM, then SIGKILL after a timeout)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.support.servers import free_port, wait_for_http


class ProcessDied(RuntimeError):
    """The process exited before it answered on its health URL."""

    def __init__(self, message: str, *, port_taken: bool) -> None:
        super().__init__(message)
        self.port_taken = port_taken


_PORT_TAKEN = ("address already in use", "errno 98", "errno 48")


class ServiceProcess:
    """One server process listening on ``127.0.0.1:<port>``.

    ``command`` is the argument list with ``{listen}`` standing for ``HOST:PORT`` (a free port
    is picked, and picked again when the process dies because someone took it meanwhile:
    ``free_port`` is racy). ``{listen}`` in a value of ``env`` is replaced too (e.g. a server
    that must know its own public URL: ``STOPGATE_PUBLIC_URL=http://{listen}``).
    stdout and stderr go to ``<log_dir>/<name>.stdout`` / ``.stderr``; ``tail()`` reads them.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        health_path: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        attempts: int = 3,
    ) -> None:
        self.name = name
        self._command = list(command)
        self._health_path = health_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self.host = host
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._attempts = attempts
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self._process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._port: int | None = None
        self._stderr_start = 0
        self.returncode: int | None = None
        self.killed = False

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError("ServiceProcess is single-use")
        last: ProcessDied | None = None
        for _ in range(self._attempts):
            try:
                self._spawn(free_port(self.host))
                self._wait_ready()
                return self
            except ProcessDied as exc:
                last = exc
                self._process = None
                if not exc.port_taken:
                    break
        assert last is not None
        raise last

    def stop(self) -> int:
        """SIGTERM, wait ``stop_timeout``, then SIGKILL; the exit code (negative: a signal)."""
        process = self._process
        if process is None:
            return self.returncode if self.returncode is not None else 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                process.kill()
                process.wait(self._stop_timeout)
        self.returncode = process.returncode
        self._process = None
        self._close_files()
        return self.returncode

    def kill(self) -> int:
        """SIGKILL at once (a crash: no cleanup runs in the process); the exit code."""
        process = self._process
        if process is None:
            return self.returncode if self.returncode is not None else 0
        if process.poll() is None:
            process.kill()
        process.wait(self._stop_timeout)
        self.returncode = process.returncode
        self._process = None
        self._close_files()
        return self.returncode

    def tail(self, lines: int = 200) -> str:
        """The last ``lines`` of stderr, then of stdout (for a failure report)."""
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if text.strip():
                kept = text.splitlines()[-lines:]
                parts.append(f"== {path.name} (last {len(kept)} lines) ==\n" + "\n".join(kept))
        return "\n".join(parts) or f"({self.name} wrote nothing)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _spawn(self, port: int) -> None:
        self._close_files()
        listen = f"{self.host}:{port}"
        command = [part.replace("{listen}", listen) for part in self._command]
        stdout = self.stdout_path.open("ab")
        stderr = self.stderr_path.open("ab")
        self._stderr_start = stderr.tell()
        self._files = [stdout, stderr]
        for handle in self._files:
            handle.write(f"---- {' '.join(command)}\n".encode())
            handle.flush()
        env = {
            name: value.replace("{listen}", listen)
            for name, value in (os.environ if self._env is None else self._env).items()
        }
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._port = port
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=self._cwd,
            # Its own process group: a Ctrl-C at the terminal reaches pytest, and pytest's
            # teardown stops the server, rather than both racing for the signal.
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        url = self.url + self._health_path
        deadline = time.monotonic() + self._start_timeout
        while True:
            if process.poll() is not None:
                self.returncode = process.returncode
                self._close_files()
                with self.stderr_path.open("rb") as handle:
                    handle.seek(self._stderr_start)
                    said = handle.read().decode("utf-8", "replace").lower()
                raise ProcessDied(
                    f"{self.name} exited with {process.returncode} before answering {url}\n"
                    + self.tail(),
                    port_taken=any(sign in said for sign in _PORT_TAKEN),
                )
            with contextlib.suppress(TimeoutError):
                wait_for_http(url, timeout=0.2)
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(
                    f"{self.name} did not answer {url} within {self._start_timeout} s\n"
                    + self.tail()
                )

    def _close_files(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []
