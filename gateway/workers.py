"""``stopgate serve --workers N``: N gateway processes on one port.

The parent starts N children, each a full gateway binding the same address with
``SO_REUSEPORT`` (the kernel spreads connections across them). The children die with the parent
(``PR_SET_PDEATHSIG``, and the parent forwards SIGTERM/SIGINT); a child that dies on its own is
started again, with a pause if it keeps dying. Caches stay coherent across the children through
the store's change feed, outbox work is leased so no two children deliver one entry, and the
spool is shared under a file lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("stopgate.workers")

_PR_SET_PDEATHSIG = 1
_RESTART_PAUSE_SECONDS = 1.0
_STOP_GRACE_SECONDS = 10.0


def _die_with_parent() -> None:
    """Runs in each child before exec: the kernel sends it SIGTERM when the parent dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def serve_workers(count: int, child_args: Sequence[str]) -> int:
    """Run ``count`` children of ``stopgate serve <child_args> --reuse-port`` until stopped."""
    command = [sys.executable, "-m", "gateway.cli", "serve", *child_args, "--reuse-port"]
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def start(slot: int) -> None:
        children[slot] = subprocess.Popen(command, preexec_fn=_die_with_parent)  # noqa: S603
        log.info("worker %d started (pid %d)", slot, children[slot].pid)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(count):
        start(slot)
    last_restart: dict[int, float] = {}
    while not stopping:
        time.sleep(0.2)
        for slot, child in list(children.items()):
            if stopping or child.poll() is None:
                continue
            log.error("worker %d exited with %s; starting it again", slot, child.returncode)
            if time.monotonic() - last_restart.get(slot, 0.0) < 10 * _RESTART_PAUSE_SECONDS:
                time.sleep(_RESTART_PAUSE_SECONDS)
            last_restart[slot] = time.monotonic()
            start(slot)
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0
