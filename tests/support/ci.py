"""Whether the tests run in CI, where a missing tool fails a test instead of skipping it."""

from __future__ import annotations

import os


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")
