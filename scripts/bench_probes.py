"""Charge time inside the benchmark's steps: the journey step's inner parts, the collector's pauses.

Split from ``bench_parts.py`` (which drives every step's logic and re-exports
:data:`PROBES` and :class:`Probes`): :class:`Probes` wraps functions of the
per-user modules to time the journey step's inner parts (outermost call only,
only while the journey step runs), :class:`GcCharge` charges the garbage
collector's pauses to the step and item kind running when they happen.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench_measure import PARTS  # type: ignore[import-not-found]

__all__ = ["PROBES", "Probes", "GcCharge"]

#: Inner parts of the journey step: functions of the per-user modules it calls,
#: timed where they are looked up. A name that no longer exists is reported as
#: missing, not guessed. Nested calls count once, for the outermost part.
PROBES: dict[str, tuple[str, ...]] = {
    "dedup": ("operators.dedup:is_duplicate", "operators.dedup:remember", "operators.dedup:expire"),
    "sessions": ("operators.sessions:add_event", "operators.sessions:pop_closed", "operators.sessions:summarise"),
    "profile": (
        "operators.profiles:new_profile",
        "operators.profile_events:apply_event",
        "operators.profile_events:close_session",
        "operators.profiles:prune",
    ),
    "segment rules": ("operators.segments:evaluate",),
    "trigger rules": ("operators.triggers:fire", "operators.triggers:prune_cooldowns"),
    "rule variables": ("operators.variables:values", "operators.variables:fields_of"),
    "labels, features": (
        "operators.labels:on_activity",
        "operators.labels:on_time",
        "operators.labels:snapshot_times",
        "operators.features:pack",
        "operators.features:snapshot_vector",
        "operators.features:scoring_vectors",
        "operators.cluster_features:cluster_features",
    ),
    "profile fields (to_fields)": ("operators.views:to_fields",),
}


class Probes:
    """Wrap functions of the per-user modules to time them (outermost call only).

    Only calls made while ``active`` count: :func:`drive` sets it around the
    journey step, so the models or the audience calling the same helpers do not.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.missing: list[str] = []
        self.active = False
        self._depth = 0

    def install(self) -> None:
        for group, names in PROBES.items():
            for name in names:
                module_name, _, attr = name.partition(":")
                module = importlib.import_module(module_name)
                original = getattr(module, attr, None)
                if not callable(original):
                    self.missing.append(name)
                    continue
                wrapped = self._wrap(group, original)
                # Also where it was imported by name (``from operators.views import to_fields``).
                for other in list(sys.modules.values()):
                    if getattr(other, "__name__", "").startswith(("operators", "flows")):
                        if getattr(other, attr, None) is original:
                            setattr(other, attr, wrapped)

    def _wrap(self, group: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth or not self.active:
                return fn(*args, **kwargs)
            self._depth = 1
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[group] += clock() - started
                self._depth = 0

        return timed


class GcCharge:
    """Charge the garbage collector's pauses to the step and item kind running (``at``)."""

    def __init__(self) -> None:
        self.at = ["parse", "view"]
        self.seconds: dict[str, dict[str, float]] = {part: defaultdict(float) for part in PARTS}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[self.at[0]][self.at[1]] += time.perf_counter() - self._started
