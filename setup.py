"""Stopgate's build. Everything declarative lives in ``pyproject.toml``; this file adds the send
path's compiled extensions: the modules that ``gateway/native.py`` lists, compiled by mypyc into
one group. ``STOPGATE_COMPILE=0`` builds without them; so does a machine without mypyc or a C
compiler (with a warning), and the gateway then runs those modules from source."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent
OFF = {"0", "false", "no", "off"}


def native_constants() -> dict[str, Any]:
    """``COMPILED_MODULES`` and ``GROUP`` from ``gateway/native.py``, read without running it."""
    tree = ast.parse((ROOT / "gateway" / "native.py").read_text(encoding="utf-8"))
    found: dict[str, Any] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id in {"COMPILED_MODULES", "GROUP"}
            and node.value is not None
        ):
            found[node.target.id] = ast.literal_eval(node.value)
    return found


def compiled_extensions() -> list[Any]:
    if os.environ.get("STOPGATE_COMPILE", "1").strip().lower() in OFF:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print(
            "stopgate: mypyc is not installed; building without compiled modules", file=sys.stderr
        )
        return []
    constants = native_constants()
    paths = [module.replace(".", "/") + ".py" for module in constants["COMPILED_MODULES"]]
    try:
        extensions = mypycify(paths, opt_level="3", group_name=constants["GROUP"])
    except (Exception, SystemExit) as exc:  # a type error stops mypyc; the pure build still works
        print(
            f"stopgate: mypyc failed ({exc!r}); building without compiled modules", file=sys.stderr
        )
        return []
    for extension in extensions:
        # Without a C compiler the build goes on without them; gateway.native then loads
        # every one of these modules from source (all or none).
        extension.optional = True
    return extensions


setup(ext_modules=compiled_extensions())
