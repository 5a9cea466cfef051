"""gateway.native: when the compiled send path may be used, and that it is used here."""

from __future__ import annotations

import enum
import importlib
import importlib.machinery
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import native
from gateway.native import PURE_ENV, NativeState, judge

MODULES = ("pkg.alpha", "pkg.sub.beta")
GROUP = "pkg._group"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
REPO = Path(__file__).resolve().parents[2]


def extension(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base.with_name(base.name + SUFFIX)


def build(
    root: Path, *, compiled: tuple[str, ...] = MODULES, group: bool = True, manifest: bool = True
) -> None:
    """Sources of ``MODULES`` under ``root``, a stand-in extension file for each of ``compiled``
    (and the group's shared library), and the manifest a complete build writes."""
    for module in MODULES:
        source = native.source_path(root, module)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"VALUE = {module!r}\n", encoding="utf-8")
    for module in (*compiled, *((GROUP + "__mypyc",) if group else ())):
        extension(root, module).write_bytes(b"")
    if manifest:
        document = {"modules": list(MODULES), "sources": native.source_digests(root, ("pkg",))}
        (root / "pkg" / native.MANIFEST).write_text(json.dumps(document), encoding="utf-8")


def state(root: Path, **env: str) -> NativeState:
    return judge(root, env, MODULES, GROUP, ("pkg",))


def test_a_complete_build_of_these_sources_is_used(tmp_path: Path) -> None:
    build(tmp_path)
    assert state(tmp_path) == NativeState(True, "")


def test_times_do_not_matter_only_contents(tmp_path: Path) -> None:
    """An installer writes a wheel's files in its own order: a source newer than its extension,
    with the contents that were compiled, is still that build."""
    build(tmp_path)
    os.utime(extension(tmp_path, "pkg.alpha"), (1_000_000, 1_000_000))
    assert state(tmp_path).compiled


@pytest.mark.parametrize(
    ("compiled", "group", "manifest", "env", "reason"),
    [
        ((), False, False, {}, "not compiled: built without mypyc"),
        ((), False, False, {PURE_ENV: "1"}, "not compiled: built without mypyc"),
        (MODULES, True, True, {PURE_ENV: "1"}, "STOPGATE_PURE_PYTHON is set"),
        (MODULES, True, True, {PURE_ENV: " True "}, "STOPGATE_PURE_PYTHON is set"),
        (MODULES[:1], True, True, {}, "partial build: no extension for pkg.sub.beta"),
        (MODULES, False, True, {}, "partial build: no extension for pkg._group__mypyc"),
        (MODULES, True, False, {}, "partial build: no readable pkg/_native_build.json"),
    ],
)
def test_the_sources_are_used_when(
    tmp_path: Path,
    compiled: tuple[str, ...],
    group: bool,
    manifest: bool,
    env: dict[str, str],
    reason: str,
) -> None:
    build(tmp_path, compiled=compiled, group=group, manifest=manifest)
    assert state(tmp_path, **env) == NativeState(False, reason)


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_a_false_pure_python_setting_keeps_the_build(tmp_path: Path, value: str) -> None:
    build(tmp_path)
    assert state(tmp_path, **{PURE_ENV: value}).compiled


def test_an_edited_source_puts_every_module_on_its_source(tmp_path: Path) -> None:
    build(tmp_path)
    native.source_path(tmp_path, "pkg.sub.beta").write_text("VALUE = 2\n", encoding="utf-8")
    assert state(tmp_path) == NativeState(
        False, "pkg/sub/beta.py changed since it was compiled; rebuild"
    )


def test_an_edited_module_that_is_not_compiled_counts_too(tmp_path: Path) -> None:
    """mypyc read it (types become checks, Final constants are inlined)."""
    build(tmp_path)
    (tmp_path / "pkg" / "config.py").write_text("LIMIT = 1\n", encoding="utf-8")
    build(tmp_path)  # the build saw config.py as it is now
    (tmp_path / "pkg" / "config.py").write_text("LIMIT = 2\n", encoding="utf-8")
    assert state(tmp_path) == NativeState(
        False, "pkg/config.py changed since it was compiled; rebuild"
    )


def test_a_removed_source_counts_as_changed(tmp_path: Path) -> None:
    build(tmp_path)
    native.source_path(tmp_path, "pkg.alpha").unlink()
    assert not state(tmp_path).compiled


def test_an_extension_left_by_another_build_is_not_trusted(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "pkg" / "old.py").write_text("", encoding="utf-8")
    extension(tmp_path, "pkg.old").write_bytes(b"")
    assert state(tmp_path) == NativeState(False, "an extension not of this build: pkg.old; rebuild")


def test_a_manifest_of_another_module_list_is_not_trusted(tmp_path: Path) -> None:
    build(tmp_path)
    path = tmp_path / "pkg" / native.MANIFEST
    document = json.loads(path.read_text(encoding="utf-8"))
    document["modules"] = ["pkg.alpha"]
    path.write_text(json.dumps(document), encoding="utf-8")
    assert state(tmp_path) == NativeState(
        False, "built for another list of compiled modules; rebuild"
    )


def test_the_finder_loads_a_module_from_its_source_beside_an_extension(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("", encoding="utf-8")
    # The stand-in extensions are empty files: imported as extensions they would fail.
    code = (
        "import sys; from gateway.native import _FromSource; from pathlib import Path; "
        f"sys.path.insert(0, {str(tmp_path)!r}); "
        f"sys.meta_path.insert(0, _FromSource(Path({str(tmp_path)!r}), {MODULES!r})); "
        "import pkg.alpha, pkg.sub.beta; print(pkg.alpha.VALUE, pkg.sub.beta.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.split() == ["pkg.alpha", str(tmp_path / "pkg" / "sub" / "beta.py")]


def test_the_send_path_runs_compiled() -> None:
    """The project's own build compiles the send path (issue 8's speed rests on it)."""
    if os.environ.get("STOPGATE_COMPILE", "").strip().lower() in native.COMPILE_OFF:
        pytest.skip("this checkout was built with STOPGATE_COMPILE=0")
    assert native.STATE.compiled, native.STATE.reason
    import gateway.front

    assert not gateway.front.__file__.endswith(".py")


def test_pure_python_loads_every_compiled_module_from_source() -> None:
    code = (
        "import importlib, gateway.native as n; "
        "print(n.STATE.describe()); "
        "print(*(importlib.import_module(m).__file__ for m in n.COMPILED_MODULES))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, PURE_ENV: "1"},
    )
    described, files = done.stdout.splitlines()
    assert described == "pure Python (STOPGATE_PURE_PYTHON is set)"
    assert all(path.endswith(".py") for path in files.split()), files
    assert len(files.split()) == len(native.COMPILED_MODULES)


@pytest.mark.parametrize("module", native.COMPILED_MODULES)
def test_a_compiled_module_defines_no_class_that_can_be_weakly_referenced(module: str) -> None:
    """mypyc's deallocator leaves weak references dangling (see gateway.native): only the
    classes mypyc leaves interpreted (enums, typing protocols) may take them."""
    if not native.STATE.compiled:
        pytest.skip(f"the send path runs from source here: {native.STATE.reason}")
    loaded = importlib.import_module(module)
    weakly_referable = [
        name
        for name, cls in vars(loaded).items()
        if inspect.isclass(cls)
        and cls.__module__ == module
        and cls.__weakrefoffset__
        and not issubclass(cls, enum.Enum)
        and not getattr(cls, "_is_protocol", False)
    ]
    assert weakly_referable == []


@pytest.mark.parametrize(
    ("module", "name"),
    [("gateway.front", "FrontProtocol"), ("gateway.upstream_lean", "_Connection")],
)
def test_a_protocol_class_has_every_method_of_asyncio_protocol(module: str, name: str) -> None:
    """They are protocols by their methods, not by inheritance (see gateway.native), so none of
    the base's defaults (e.g. ``pause_writing`` when a large body fills the write buffer) is
    inherited."""
    import asyncio

    cls = getattr(importlib.import_module(module), name)
    expected = [n for n in dir(asyncio.Protocol) if not n.startswith("_")]
    assert [n for n in expected if not callable(getattr(cls, n, None))] == []
