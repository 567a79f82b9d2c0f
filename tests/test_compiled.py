"""The mypyc build is used only when it matches the source, and it is built."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

import orjson
import pytest

from journeyflow.compiled import (
    MANIFEST,
    PURE_VARIABLE,
    ROOT,
    compiled_modules,
    listed_modules,
    source_digest,
    source_path,
)

SOURCE = b"X = 1\n"
DIGEST = hashlib.sha256(SOURCE).hexdigest()


def _project(tmp_path: Path, digest: str, cache_tag: str = sys.implementation.cache_tag) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "part.py").write_bytes(SOURCE)
    build = tmp_path / "build"
    build.mkdir()
    manifest = {"cache_tag": cache_tag, "modules": {"pkg.part": digest}}
    (build / MANIFEST.name).write_bytes(orjson.dumps(manifest))
    return root, build


def test_a_build_matching_its_source_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PURE_VARIABLE, raising=False)
    root, build = _project(tmp_path, digest=DIGEST)
    assert source_digest(root / "pkg" / "part.py") == DIGEST
    assert compiled_modules(build, root) == {"pkg.part": DIGEST}


def test_a_stale_build_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(PURE_VARIABLE, raising=False)
    root, build = _project(tmp_path, digest="0" * 64)
    assert compiled_modules(build, root) is None
    assert "pkg.part" in caplog.text and "make install" in caplog.text


def test_pure_variable_or_another_python_turn_the_build_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, build = _project(tmp_path, digest=DIGEST)
    monkeypatch.setenv(PURE_VARIABLE, "1")
    assert compiled_modules(build, root) is None
    monkeypatch.delenv(PURE_VARIABLE)
    root, build = _project(tmp_path / "other", digest=DIGEST, cache_tag="cpython-299")
    assert compiled_modules(build, root) is None


def test_no_build_means_source(tmp_path: Path) -> None:
    assert compiled_modules(tmp_path / "missing", tmp_path) is None


@pytest.mark.skipif(importlib.util.find_spec("mypyc") is None, reason="mypyc is not installed (make install adds it)")
def test_the_listed_modules_are_compiled_and_loaded() -> None:
    """`make install` compiled every listed module, and they are what is imported (unless JOURNEYFLOW_PURE)."""
    if not MANIFEST.exists():
        pytest.skip("no build: run `make install` (or python scripts/compile.py)")
    manifest = orjson.loads(MANIFEST.read_bytes())
    assert not manifest["error"], f"the listed modules did not compile:\n{manifest['error']}"
    assert sorted(manifest["modules"]) == sorted(listed_modules()), "the build is older than the list: run `make install`"
    modules = compiled_modules()
    for name in listed_modules():
        module = importlib.import_module(name)
        compiled = Path(module.__file__ or "").suffix == ".so"
        assert compiled == (modules is not None), f"{name} loaded from {module.__file__}"
        assert source_path(ROOT, name).exists()
