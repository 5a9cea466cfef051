r"""Which of the gateway's modules run compiled, and the rule that keeps a stale build out.

The modules of the send path (:data:`COMPILED_MODULES`) are compiled to C extensions by mypyc
when the project is built (``setup.py``; ``STOPGATE_COMPILE=0`` builds without). Their ``.py``
files stay beside the extensions and remain the source of truth. Python imports an extension in
preference to a ``.py`` file of the same name, so a build that no longer matches its sources
would run old code. A complete build leaves a manifest beside them (:data:`MANIFEST`): the
compiled module list and the SHA-256 of every ``.py`` file of ``gateway/`` and ``policy/``
as they were compiled (mypyc reads the modules the compiled ones import too: their types
become runtime checks, their ``Final`` constants are inlined). :func:`choose` runs once, from
``gateway/__init__.py``, before any of these modules is imported, and loads every one of them
from source instead when

- ``STOPGATE_PURE_PYTHON`` is set to a true value (e.g. to profile with py-spy, which sees
  nothing inside compiled functions),
- any of those ``.py`` files differs from the manifest (edited since the build; contents, not
  times, are compared, since an installer writes files in its own order),
- the build is partial: no manifest, an extension missing for a listed module or the group's
  shared library, or an extension under ``gateway/`` or ``policy/`` that is not one of them (left
  by an earlier build: it would still be imported, so it loads from source too).

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

import hashlib
import importlib.machinery
import json
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
    "gateway.log_lines",
    "gateway.metric_children",
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

MANIFEST: Final = "_native_build.json"
"""The build manifest's file name, in ``gateway/`` (written by ``setup.py`` after a complete
build): ``{"modules": [...], "sources": {"gateway/front.py": "<sha256>", ...}}``."""

SOURCE_PACKAGES: Final = ("gateway", "policy")
"""The packages whose sources the manifest covers: everything mypyc read of this project."""

PURE_ENV: Final = "STOPGATE_PURE_PYTHON"
COMPILE_OFF: Final = frozenset({"0", "false", "no", "off"})
"""``STOPGATE_COMPILE`` values (install time, ``setup.py``) that build without compiling."""
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


def source_digests(root: Path, packages: Sequence[str] = SOURCE_PACKAGES) -> dict[str, str]:
    """SHA-256 of every ``.py`` file of ``packages`` under ``root``, by ``/``-path from ``root``
    (what the manifest holds)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def extension_modules(root: Path, packages: Sequence[str] = SOURCE_PACKAGES) -> list[str]:
    """Every module under ``packages`` that has an extension file for this interpreter."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES  # the most specific first
    endings = {"." + suffix.rsplit(".", 1)[-1] for suffix in suffixes}
    found = set()
    for package in packages:
        for path in (p for e in sorted(endings) for p in (root / package).rglob("*" + e)):
            relative = path.relative_to(root).as_posix()
            suffix = next((s for s in suffixes if relative.endswith(s)), None)
            if suffix is not None:
                found.add(relative[: -len(suffix)].replace("/", "."))
    return sorted(found)


def judge(
    root: Path,
    env: Mapping[str, str],
    modules: Sequence[str] = COMPILED_MODULES,
    group: str = GROUP,
    packages: Sequence[str] = SOURCE_PACKAGES,
) -> NativeState:
    """Decide whether the extensions under ``root`` may be used (see the module docstring)."""
    present = extension_modules(root, packages)
    if not present:
        return NativeState(False, "not compiled: built without mypyc")
    if env.get(PURE_ENV, "").strip().lower() in _TRUE:
        return NativeState(False, f"{PURE_ENV} is set")
    expected = {*modules, group + "__mypyc"}
    stray = [module for module in present if module not in expected]
    if stray:
        return NativeState(False, f"an extension not of this build: {', '.join(stray)}; rebuild")
    missing = sorted(expected.difference(present))
    if missing:
        return NativeState(False, f"partial build: no extension for {', '.join(missing)}")
    try:
        manifest = json.loads((root / packages[0] / MANIFEST).read_text(encoding="utf-8"))
        built_modules, built_sources = manifest["modules"], manifest["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return NativeState(False, f"partial build: no readable {packages[0]}/{MANIFEST}")
    if built_modules != list(modules):
        return NativeState(False, "built for another list of compiled modules; rebuild")
    current = source_digests(root, packages)
    for path, digest in built_sources.items():
        if current.get(path) != digest:
            return NativeState(False, f"{path} changed since it was compiled; rebuild")
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
    if not STATE.compiled:
        present = extension_modules(root)  # (a compiled start walks the tree once, in judge)
        if present:
            sys.meta_path.insert(0, _FromSource(root, [*COMPILED_MODULES, *present]))
    return STATE
