"""Doctests of mypyc-compiled modules run from source (`make test`'s pure pass).

A compiled module's functions carry no doctests that pytest can collect, and
pytest refuses a module whose imported file is not the collected one. While the
build is in use, the compiled modules' sources are left out of doctest
collection here; `make test` runs them again with JOURNEYFLOW_PURE=1.
"""

from journeyflow.compiled import ROOT, compiled_modules, source_path

collect_ignore = [str(source_path(ROOT, name)) for name in compiled_modules() or {}]
