"""Request ids Stopgate makes up for sends that came without one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gateway.sending import _request_ids


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [_request_ids.next() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


FORK_AND_COMPARE = """
import os
from gateway.sending import _request_ids
_request_ids.next()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, _request_ids.next().encode())
    os._exit(0)
os.close(write)
child = os.read(read, 64).decode()
os.waitpid(pid, 0)
print(child, _request_ids.next())
"""


def test_a_forked_worker_draws_ids_of_its_own() -> None:
    # In a process of its own: forking the (threaded) test runner is not safe.
    result = subprocess.run(
        [sys.executable, "-c", FORK_AND_COMPARE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    child, parent = result.stdout.split()
    assert re.fullmatch(r"[0-9a-f]{32}", child) and re.fullmatch(r"[0-9a-f]{32}", parent)
    assert child[:16] != parent[:16]


def test_the_counter_part_is_zero_padded_hex_of_the_count() -> None:
    ids = _request_ids.__class__()
    ids._counter = iter([0, 255, 2**64 - 1, 2**64 + 5])  # the count wraps at 64 bits
    prefix = ids._prefix
    assert [ids.next() for _ in range(4)] == [
        prefix + "0" * 16,
        prefix + "0" * 14 + "ff",
        prefix + "f" * 16,
        prefix + "0" * 15 + "5",
    ]
