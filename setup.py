"""Stopgate's build. Everything declarative lives in ``pyproject.toml``; this file adds the send
path's compiled extensions: the modules that ``gateway/native.py`` lists, compiled by mypyc into
one group, and the build manifest that lets the gateway use them (``gateway/native.py`` says
when). ``STOPGATE_COMPILE=0`` builds without them; so does a machine without mypyc or a C
compiler, with a warning, and the gateway then runs those modules from source.
``STOPGATE_COMPILE=require`` makes either a build failure instead (the image build uses it:
there a pure build would hide a broken compile; in CI a test fails when the checkout is not
compiled)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
MODE = os.environ.get("STOPGATE_COMPILE", "1").strip().lower()
REQUIRED = MODE == "require"


def load_native() -> ModuleType:
    """``gateway/native.py`` on its own (it imports nothing of the project), without importing
    the ``gateway`` package."""
    spec = importlib.util.spec_from_file_location(
        "_stopgate_native", ROOT / "gateway" / "native.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


native = load_native()
COMPILED_SOURCES: dict[str, str] = {}
"""The sources' digests as mypyc read them (taken just before it does, so an edit made while
the C compiler runs shows as a change)."""


def warn(message: str) -> None:
    print(f"stopgate: {message}; building without compiled modules", file=sys.stderr)


def compiled_extensions() -> list[Any]:
    if MODE in native.COMPILE_OFF:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        # Also how setuptools first runs this file, to ask for the build's requirements, before
        # those (mypy among them: build_support/stopgate_build.py) are installed.
        warn("mypyc is not installed")
        return []
    paths = [module.replace(".", "/") + ".py" for module in native.COMPILED_MODULES]
    COMPILED_SOURCES.update(native.source_digests(ROOT))
    try:
        extensions = mypycify(paths, opt_level="3", group_name=native.GROUP)
    except (Exception, SystemExit) as exc:  # a type error stops mypyc; the pure build still works
        if REQUIRED:
            raise
        warn(f"mypyc failed ({exc!r})")
        return []
    for extension in extensions:
        # Without a C compiler the build goes on without them (unless required); without the
        # manifest below, gateway.native then loads every one of these modules from source.
        extension.optional = not REQUIRED
    return extensions


class BuildWithManifest(build_ext):
    """``build_ext`` that clears what an earlier build left and, when every extension was built,
    writes ``gateway/native.py``'s manifest beside them."""

    def run(self) -> None:
        targets = [Path(self.build_lib)]
        if self.inplace:
            targets.append(ROOT)
            for module in native.extension_modules(ROOT):
                # An extension this build does not make again would still be imported.
                stale = ROOT.joinpath(*module.split("."))
                for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                    stale.with_name(stale.name + suffix).unlink(missing_ok=True)
        manifests = [target / "gateway" / native.MANIFEST for target in targets]
        for manifest in manifests:
            manifest.unlink(missing_ok=True)
        super().run()
        built = [
            Path(self.build_lib, self.get_ext_filename(self.get_ext_fullname(extension.name)))
            for extension in self.extensions
        ]
        if not built or not all(path.is_file() for path in built):
            return
        document = {"modules": list(native.COMPILED_MODULES), "sources": COMPILED_SOURCES}
        for manifest in manifests:
            manifest.parent.mkdir(parents=True, exist_ok=True)
            manifest.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": BuildWithManifest})
