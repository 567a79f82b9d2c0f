"""Compile the per-user modules with mypyc into build/mypyc (run by `make install`).

The modules are listed in pyproject.toml, ``[tool.journeyflow] compiled``. They are
compiled together (one shared library, so calls between them stay native) and a
manifest records each source's digest; ``journeyflow.compiled`` loads the build
only while every digest matches. If mypyc or the C compiler fails, the build is
removed, the manifest lists no module (so `make` does not retry on every run) and
the project runs from source: this script then exits 0 after one warning, unless
``--strict``. tests/test_compiled.py fails when mypyc is installed and the listed
modules did not compile, so a module that stops compiling is seen in CI.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from journeyflow.compiled import BUILD_DIR, MANIFEST, ROOT, listed_modules, source_digest, source_path

# Imported modules are type-checked only as far as the compiled ones need them; their
# own type errors are not this build's business (mypy's "silent" import following).
MYPY_FLAGS = ["--follow-imports=silent", "--ignore-missing-imports"]

SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
setup(name="journeyflow-compiled", ext_modules=mypycify(sys.argv[3:], opt_level="3"), script_args=sys.argv[1:3])
"""


def build(modules: list[str]) -> subprocess.CompletedProcess[str]:
    sources = [str(source_path(ROOT, name).relative_to(ROOT)) for name in modules]
    with tempfile.TemporaryDirectory() as scratch:
        setup = Path(scratch) / "setup.py"
        setup.write_text(SETUP)
        return subprocess.run(
            [sys.executable, str(setup), "build_ext", f"--build-lib={BUILD_DIR}", *MYPY_FLAGS, *sources],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )


def write_manifest(modules: dict[str, str], error: str = "") -> None:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    manifest = {"cache_tag": sys.implementation.cache_tag, "modules": modules, "error": error}
    MANIFEST.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="fail (exit 1) when the modules do not compile")
    args = parser.parse_args(argv)
    modules = listed_modules()
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    started = time.monotonic()
    # Digests of the sources as the build reads them: a source edited while mypyc
    # runs no longer matches, so the stale build is not loaded for it.
    digests = {name: source_digest(source_path(ROOT, name)) for name in modules}
    done = build(modules)
    if done.returncode != 0:
        shutil.rmtree(BUILD_DIR, ignore_errors=True)
        write_manifest({}, error=done.stdout[-4000:] + done.stderr[-4000:])
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "error" in line.lower()]
        print("compile: mypyc failed; journeyflow runs from source. First errors:", file=sys.stderr)
        print("\n".join(errors[:10]) or done.stderr[-2000:], file=sys.stderr)
        return 1 if args.strict else 0
    write_manifest(digests)
    print(f"compile: {len(modules)} modules compiled with mypyc in {time.monotonic() - started:.0f} s ({BUILD_DIR})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
