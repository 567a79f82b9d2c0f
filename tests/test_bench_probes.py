"""Every part the benchmark times inside the journey step names a function that exists.

A probe whose function moved is reported as "not found" in the benchmark's
table and times nothing: this catches the move when it is made.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


def _bench_probes() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("bench_probes")
    finally:
        sys.path.remove(str(SCRIPTS))


def test_a_probe_times_only_the_outermost_call_and_only_while_active() -> None:
    probes = _bench_probes().Probes()
    calls: list[str] = []

    def inner(x: int) -> int:
        calls.append("inner")
        return x + 1

    timed_inner = probes._wrap("inner part", inner)

    def outer(x: int) -> int:
        calls.append("outer")
        return timed_inner(x) * 2

    timed_outer = probes._wrap("outer part", outer)
    assert timed_outer(1) == 4  # inactive: passed through, nothing charged
    assert probes.seconds == {}
    probes.active = True
    assert timed_outer(2) == 6 and timed_inner(3) == 4
    probes.active = False
    assert calls == ["outer", "inner", "outer", "inner", "inner"]
    # The nested call counted once, for the outer part; the inner part only for its own call.
    assert set(probes.seconds) == {"outer part", "inner part"}
    assert all(seconds > 0 for seconds in probes.seconds.values())


def test_a_probe_still_raises_and_is_ready_for_the_next_call() -> None:
    probes = _bench_probes().Probes()
    probes.active = True

    def fails() -> None:
        raise KeyError("x")

    timed = probes._wrap("part", fails)
    for _ in range(2):
        with pytest.raises(KeyError):
            timed()
    assert probes._depth == 0 and probes.seconds["part"] > 0


def test_the_collectors_pauses_are_charged_to_the_step_and_kind_running() -> None:
    charge = _bench_probes().GcCharge()
    charge.at[:] = ["models", "tick"]
    charge("start", {})
    charge("stop", {})
    charge.at[:] = ["journey", "view"]
    charge("start", {})
    charge("stop", {})
    assert set(charge.seconds["models"]) == {"tick"} and charge.seconds["models"]["tick"] >= 0.0
    assert set(charge.seconds["journey"]) == {"view"}
    assert all(not by_kind for part, by_kind in charge.seconds.items() if part not in ("models", "journey"))
