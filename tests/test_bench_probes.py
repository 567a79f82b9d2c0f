"""Every part the benchmark times inside the journey step names a function that exists.

A probe whose function moved is reported as "not found" in the benchmark's
table and times nothing: this catches the move when it is made.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_every_probe_names_a_function_of_its_module() -> None:
    # bench_parts imports its sibling scripts by name, as bench.py runs it.
    sys.path.insert(0, str(SCRIPTS))
    try:
        bench_parts = importlib.import_module("bench_parts")
    finally:
        sys.path.remove(str(SCRIPTS))
    missing = []
    for names in bench_parts.PROBES.values():
        for name in names:
            module_name, _, attr = name.partition(":")
            if not callable(getattr(importlib.import_module(module_name), attr, None)):
                missing.append(name)
    assert missing == []
