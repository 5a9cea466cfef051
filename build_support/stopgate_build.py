"""The build backend: setuptools', plus what compiling the send path needs in the build
environment (see ``setup.py``). mypyc type-checks the compiled modules together with everything
they import, so the build environment holds the project's own dependencies, the mypy of the
``test`` extra and the stubs that extra lists; all are read from ``pyproject.toml``, so nothing
is listed twice."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 (this module is setuptools' backend, extended)

# gateway.native.COMPILE_OFF (this backend runs before the project is importable)
OFF = {"0", "false", "no", "off"}


def compile_requires() -> list[str]:
    if os.environ.get("STOPGATE_COMPILE", "1").strip().lower() in OFF:
        return []
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    typing_tools = [
        requirement
        for requirement in extras.get("test", [])
        if requirement.startswith(("mypy", "types-"))
    ]
    return [*project.get("dependencies", []), *extras.get("fast", []), *typing_tools]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [*build_meta.get_requires_for_build_wheel(config_settings), *compile_requires()]


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [*build_meta.get_requires_for_build_editable(config_settings), *compile_requires()]
