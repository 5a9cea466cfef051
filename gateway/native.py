r"""Which of the gateway's modules run compiled, and the rule that keeps a stale build out.

The modules of the send path (:data:`COMPILED_MODULES`) are compiled to C extensions by mypyc
when the project is built (``setup.py``; ``STOPGATE_COMPILE=0`` builds without). Their ``.py``
files stay beside the extensions and remain the source of truth. Python imports an extension in
preference to a ``.py`` file of the same name, so a build that no longer matches its sources
would run old code. :func:`choose` runs once, from ``gateway/__init__.py``, before any of these
modules is imported, and loads every one of them from source instead when

- ``STOPGATE_PURE_PYTHON`` is set to a true value (e.g. to profile with py-spy, which sees
  nothing inside compiled functions),
- any compiled module's ``.py`` file is newer than its extension (edited since the build),
- the build is partial: some modules have an extension and others, or the shared library of
  the group, do not.

It is all or none because compiled modules of one group call each other directly, not through
the import system: one module from source beside the others compiled would still run the old
code of the one through the others' calls.

Rules for the compiled modules (tests in ``tests/unit/test_native.py`` hold the first):

- Their classes are native classes: no base class from outside the group, except ``Enum`` and
  ``typing.Protocol`` declarations, which mypyc leaves interpreted. A compiled class with an
  interpreted base gets ``__dict__`` and a weak-reference slot, and mypyc's deallocator does not
  clear weak references (mypyc issue 1102): a weakly referenced instance, such as a logging
  handler, leaves a dangling reference that crashed the interpreter at exit. So protocol
  classes are ``asyncio.Protocol``\ s by their methods, exceptions live in :mod:`gateway.errors`,
  aiohttp's subclasses in :mod:`gateway.server` and logging's in :mod:`gateway.logs`, none of
  which is compiled.
- They declare no ``__slots__`` (mypyc refuses them; a native class's attributes are fixed).
- Module-level ``Final`` constants are compiled in: change them through a parameter, not by
  patching the module.

This module imports nothing of the gateway and is never compiled itself.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

COMPILED_MODULES: Final = (
    "gateway.consent_index",
    "gateway.credentials",
    "gateway.dialects.base",
    "gateway.dialects.ringcentral",
    "gateway.dialects.twilio",
    "gateway.front",
    "gateway.routing",
    "gateway.send_request",
    "gateway.sending",
    "gateway.upstream",
    "gateway.upstream_lean",
)
"""The send path's modules, compiled together as one group (they call each other natively)."""

GROUP: Final = "gateway._compiled"
"""The group's name: mypyc puts the code of all its modules in one shared library named after
it (``gateway/_compiled__mypyc.<abi>.so``); each module's own extension is a small shim."""

PURE_ENV: Final = "STOPGATE_PURE_PYTHON"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class NativeState:
    """How the compiled modules were loaded, for the start-up log and the benchmarks."""

    compiled: bool
    reason: str
    """Why (e.g. ``"STOPGATE_PURE_PYTHON is set"``); empty when compiled."""

    def describe(self) -> str:
        if self.compiled:
            return f"compiled ({len(COMPILED_MODULES)} send-path modules, mypyc)"
        return f"pure Python ({self.reason})"


def source_path(root: Path, module: str) -> Path:
    """The ``.py`` file of a module of ``gateway`` under ``root`` (the directory holding it)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(root: Path, module: str) -> Path | None:
    """The module's compiled extension under ``root``, if one was built for this interpreter."""
    base = root.joinpath(*module.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def judge(
    root: Path,
    env: Mapping[str, str],
    modules: Sequence[str] = COMPILED_MODULES,
    group: str = GROUP,
) -> NativeState:
    """Decide whether the extensions under ``root`` may be used (see the module docstring)."""
    extensions = {module: extension_path(root, module) for module in modules}
    built = [module for module, path in extensions.items() if path is not None]
    if not built:
        return NativeState(False, "not compiled: built without mypyc")
    if env.get(PURE_ENV, "").strip().lower() in _TRUE:
        return NativeState(False, f"{PURE_ENV} is set")
    missing = [module for module, path in extensions.items() if path is None]
    if extension_path(root, group + "__mypyc") is None:
        missing.append(group + "__mypyc")
    if missing:
        return NativeState(False, f"partial build: no extension for {', '.join(missing)}")
    for module, extension in extensions.items():
        assert extension is not None
        source = source_path(root, module)
        if source.is_file() and source.stat().st_mtime > extension.stat().st_mtime:
            return NativeState(
                False, f"{source.relative_to(root)} changed since it was compiled; rebuild"
            )
    return NativeState(True, "")


class _FromSource:
    """A meta-path finder that loads the named modules from their ``.py`` files."""

    def __init__(self, root: Path, modules: Sequence[str]) -> None:
        self._root = root
        self._modules = frozenset(modules)

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in self._modules:
            return None
        source = source_path(self._root, name)
        finder = importlib.machinery.FileFinder(
            str(source.parent),
            (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
        )
        return finder.find_spec(name, target)


STATE: NativeState = NativeState(False, "not judged yet")
"""Set by :func:`choose` when the package is first imported."""


def choose() -> NativeState:
    """Judge this installation once and, unless its extensions may be used, load the compiled
    modules from source. Called by ``gateway/__init__.py``."""
    global STATE
    root = Path(__file__).resolve().parent.parent
    STATE = judge(root, os.environ)
    if not STATE.compiled and any(extension_path(root, m) for m in COMPILED_MODULES):
        sys.meta_path.insert(0, _FromSource(root, COMPILED_MODULES))
    return STATE
