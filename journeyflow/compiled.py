"""Use the mypyc-compiled per-user modules when they match their source.

``make install`` compiles the modules listed in ``pyproject.toml``
(``[tool.journeyflow] compiled``) with mypyc into ``build/mypyc`` (see
``scripts/compile.py``) and records a digest of each source. A package that
has compiled modules calls :func:`use_compiled` from its ``__init__``: its
import path then looks in the build first, so ``import operators.dedup`` loads
the extension module. The source stays the definition and the fallback:

- with ``JOURNEYFLOW_PURE=1`` every module runs from source (the test suite runs
  the per-user tests both ways);
- when a compiled source has changed since the build, nothing compiled is used
  (a stale extension would run old code) and one warning says so;
- when there is no build (mypyc or a C compiler missing), the source runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tomllib
from pathlib import Path

import orjson

__all__ = ["BUILD_DIR", "MANIFEST", "ROOT", "PURE_VARIABLE", "compiled_modules", "listed_modules", "source_digest", "source_path", "use_compiled"]

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "mypyc"
MANIFEST = BUILD_DIR / "manifest.json"
PURE_VARIABLE = "JOURNEYFLOW_PURE"

log = logging.getLogger(__name__)


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed_modules(root: Path = ROOT) -> list[str]:
    """The modules ``pyproject.toml`` asks to compile (``[tool.journeyflow] compiled``)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    modules: list[str] = config["tool"]["journeyflow"]["compiled"]
    return modules


def compiled_modules(build_dir: Path = BUILD_DIR, root: Path = ROOT) -> dict[str, str] | None:
    """The build's modules (dotted name -> source digest) if it can be used here, else None."""
    if os.environ.get(PURE_VARIABLE, "") not in ("", "0"):
        return None
    try:
        manifest = orjson.loads((build_dir / MANIFEST.name).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if manifest.get("cache_tag") != sys.implementation.cache_tag:
        return None
    modules: dict[str, str] = manifest.get("modules", {})
    stale = [name for name, digest in modules.items() if not _matches(root, name, digest)]
    if stale:
        log.warning(
            "compiled modules are older than their source (%s); running the source. Run `make install` to rebuild",
            ", ".join(sorted(stale)),
        )
        return None
    return modules


def use_compiled(package_path: list[str], package: str) -> bool:
    """Put the build's copy of ``package`` first on its import path; return whether it is used."""
    modules = compiled_modules()
    if not modules or not any(name.startswith(package + ".") for name in modules):
        return False
    package_path.insert(0, str(BUILD_DIR / package))
    # mypyc puts the compiled code of all modules in one shared library at the build's top level.
    if str(BUILD_DIR) not in sys.path:
        sys.path.append(str(BUILD_DIR))
    return True


def source_path(root: Path, module: str) -> Path:
    return root / (module.replace(".", "/") + ".py")


def _matches(root: Path, name: str, digest: str) -> bool:
    source = source_path(root, name)
    try:
        return source_digest(source) == digest
    except OSError:
        return False
