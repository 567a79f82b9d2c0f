"""The benchmark's driven steps hand the models step the batches a replay's models step receives.

``scripts/bench_parts.py`` times every step without bytewax; its models figures are
the flow's only if the models step takes the same updates in the same batches, in
the same order (``ModelLogic.on_batch`` scores runs of updates together). Not a
timed test.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from config.settings import load_settings
from flows.replay import replay
from journeyflow.generator import GeneratorConfig, generate
from operators.models import ModelLogic

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str, int]]]:
    """Record every batch the models step is given (each update's user, kind and time)."""
    batches: list[list[tuple[str, str, int]]] = []
    on_batch = ModelLogic.on_batch

    def recording(self: ModelLogic, values: list[Any]) -> Any:
        batches.append([(u.user_id, u.kind, u.ts_ms) for u in values])
        return on_batch(self, values)

    def one(self: ModelLogic, value: Any) -> Any:
        return recording(self, [value])

    monkeypatch.setattr(ModelLogic, "on_batch", recording)
    monkeypatch.setattr(ModelLogic, "on_item", one)
    return batches


def test_the_benchmark_gives_the_models_the_flows_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Anonymous visitors, logins and noise: the device step, forwards and dead letters
    # all shape a batch; several source batches and the finishing batches.
    source = tmp_path / "events.jsonl"
    generate(GeneratorConfig(users=200, days=14, seed=5, anonymous_share=0.3, malformed_share=0.01), source, tmp_path / "truth.jsonl")
    monkeypatch.setenv("JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT", "true")
    monkeypatch.setenv("JOURNEYFLOW_MODELS_MIN_EXAMPLES", "0")
    flow = _recorded(monkeypatch)
    replay([source], tmp_path / "out", load_settings(None), workers=1, show_progress=False)
    monkeypatch.undo()
    monkeypatch.setenv("JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT", "true")
    monkeypatch.setenv("JOURNEYFLOW_MODELS_MIN_EXAMPLES", "0")
    driven = _recorded(monkeypatch)
    sys.path.insert(0, str(SCRIPTS))
    try:
        bench_parts = importlib.import_module("bench_parts")
    finally:
        sys.path.remove(str(SCRIPTS))
    figures = bench_parts.drive(source, None)
    assert len(flow) > 3  # several source batches, then the last ticks' and the Finishes'
    assert driven == flow
    assert figures["counts"]["end of input"] == figures["users"] > 0
    assert sum(figures["seconds"]["models"].values()) > 0
