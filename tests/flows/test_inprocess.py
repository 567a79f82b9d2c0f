"""The in-process per-user steps (for benchmarks and evaluations) give the flow's outputs."""

from __future__ import annotations

from pathlib import Path

import orjson

from flows.files import ReplayClock, replay_stream
from flows.inprocess import PerUserSteps
from flows.step_configs import event_parser, journey_config
from journeyflow.records import SessionSummary
from operators.rules import load_rules
from tests.flows.test_identity import _journeys
from tests.helpers import run_replay, settings, write_events


def test_the_in_process_steps_close_the_flows_sessions(tmp_path: Path) -> None:
    events = _journeys()
    replayed = run_replay(tmp_path, events)
    cfg = settings()
    steps = PerUserSteps(journey_config(cfg, load_rules(cfg.rules_path), timers=False), cfg.identity.link_idle_s * 1000)
    source = write_events(tmp_path / "again.jsonl", events)
    items = replay_stream([source], event_parser(cfg), ReplayClock.from_settings(cfg))
    sessions = [r for r in steps.feed_all(items) if isinstance(r, SessionSummary)]
    ordered = sorted((orjson.loads(s.to_json()) for s in sessions), key=lambda r: (r["start"], r["user_id"]))
    assert ordered == replayed.sessions
