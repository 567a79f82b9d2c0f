"""Snapshots across builds (state/portable.py): the compiled modules' dataclasses pickle to
the same bytes from mypyc and from source, each build resumes the other's snapshots (and
the old form of either), and a class whose fields changed fails with a clear message."""

from __future__ import annotations

import copyreg
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from journeyflow import generator
from journeyflow.compiled import PURE_VARIABLE, ROOT, compiled_modules
from journeyflow.errors import StateSerializationError
from operators.dedup import DedupState, from_seen
from operators.journey_state import JourneyState
from state import portable
from state.serde import decode_state, encode_state
from tests.state.user_snapshots import user_snapshots


@dataclass(slots=True)
class Thing:
    """A state class of this test, registered as the compiled modules' are."""

    a: int = 0
    b: list[int] = field(default_factory=list)


@pytest.fixture
def thing() -> Iterator[None]:
    copyreg.pickle(Thing, portable.reducer(Thing))
    portable._resolve.cache_clear()
    yield
    copyreg.dispatch_table.pop(Thing, None)
    portable._resolve.cache_clear()


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1,150 generated lines (80 users, 6 days): devices, logins, noise."""
    path = tmp_path_factory.mktemp("portable") / "events.jsonl"
    generator.generate(generator.GeneratorConfig(users=80, days=6, seed=11), path)
    return path


def _old_form(state: Any) -> bytes:
    """``state`` pickled as before state/portable.py (pickle's own form, this build's)."""
    classes = portable.register_compiled_states()
    for cls in classes:
        copyreg.dispatch_table.pop(cls)
    try:
        return pickle.dumps(state, protocol=5)
    finally:
        for cls in classes:
            copyreg.pickle(cls, portable.reducer(cls))


def test_every_state_class_of_the_compiled_modules_is_registered() -> None:
    classes = portable.register_compiled_states()
    assert {JourneyState, DedupState} <= classes
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in classes}
    assert {"operators.sessions.Session", "operators.profiles.Profile", "operators.identity.DeviceState"} <= names
    assert all(copyreg.dispatch_table.get(cls) is not None for cls in classes)


def test_a_state_round_trips_through_the_portable_form() -> None:
    state = JourneyState(user="u1", max_ts_ms=5, dedup=from_seen({"seen": {"e1": 4}}), segments=("vip",))
    data = encode_state(state)
    assert b"state.portable" in data and b"operators.journey_state:JourneyState:" in data
    assert decode_state(data, JourneyState) == state


def test_the_portable_form_is_smaller_than_pickles_own(events: Path) -> None:
    snapshots = user_snapshots(events)
    states = [decode_state(data, object) for data in snapshots.values()]
    portable_bytes = sum(len(data) for data in snapshots.values())
    old_bytes = sum(len(_old_form(state)) for state in states)
    assert [encode_state(state) for state in states] == list(snapshots.values())
    # Field names are no longer repeated in every snapshot (about 0.56x here).
    assert portable_bytes < 0.8 * old_bytes


def test_an_old_snapshot_loads_with_shared_references_kept() -> None:
    shared = from_seen({"seen": {"e1": 1}})
    old = _old_form([shared, shared, JourneyState(user="u1", dedup=shared)])
    assert b"state.portable" not in old
    first, second, journey = decode_state(old, list)
    assert type(first) is DedupState and first == shared
    assert first is second is journey.dedup


def test_a_field_added_at_the_end_takes_its_default(thing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode_state(Thing(3, [1]))

    @dataclass(slots=True)
    class Thing2:
        a: int = 0
        b: list[int] = field(default_factory=list)
        c: dict[str, int] = field(default_factory=dict)

    Thing2.__qualname__ = "Thing"
    monkeypatch.setattr(sys.modules[__name__], "Thing", Thing2)
    resumed = decode_state(data, Thing2)
    assert (resumed.a, resumed.b, resumed.c) == (3, [1], {})


@pytest.mark.parametrize("change", ["renamed", "removed", "reordered"])
def test_fields_renamed_removed_or_reordered_fail_naming_the_class(
    change: str, thing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode_state(Thing(3, [1]))
    fields = {"renamed": ("a", "items"), "removed": ("a",), "reordered": ("b", "a")}[change]
    changed: Any = dataclass(slots=True)(type("Thing", (), {"__annotations__": {name: "Any" for name in fields}}))
    monkeypatch.setattr(sys.modules[__name__], "Thing", changed)
    with pytest.raises(StateSerializationError, match=r"snapshot of tests\.state\.test_portable\.Thing must have the fields"):
        decode_state(data, changed)


def test_an_old_snapshot_with_an_unknown_field_fails_naming_it() -> None:
    # An old snapshot of a class whose field was renamed since (same length: still a valid pickle).
    data = _old_form(JourneyState(user="u1")).replace(b"max_ts_ms", b"max_ts_xx")
    with pytest.raises(StateSerializationError, match=r"JourneyState must have its fields; got unknown \['max_ts_xx'\]"):
        decode_state(data, JourneyState)


# --- across builds: each side runs in its own process ------------------------------

needs_build = pytest.mark.skipif(compiled_modules() is None, reason="no compiled build in use (make install)")


def _run(pure: bool, *args: str | Path) -> dict[str, Any]:
    env = {**os.environ, PURE_VARIABLE: "1" if pure else "0"}
    out = Path(str(args[-1]))
    subprocess.run(
        [sys.executable, "-m", "tests.state.user_snapshots", *map(str, args)], cwd=ROOT, env=env, check=True
    )
    result: dict[str, Any] = pickle.loads(out.read_bytes())
    assert result["build"] == ("source" if pure else "compiled")
    return result


@needs_build
def test_both_builds_write_the_same_snapshots_and_resume_each_others(events: Path, tmp_path: Path) -> None:
    compiled = _run(False, "write", events, tmp_path / "compiled.pkl")["snapshots"]
    source = _run(True, "write", events, tmp_path / "source.pkl")["snapshots"]
    assert len(compiled) > 80 and any(key.startswith("device/") for key in compiled)
    assert source == compiled
    # Resumed in the other build, each state snapshots to the same bytes again.
    assert _run(False, "reload", tmp_path / "source.pkl", tmp_path / "c.pkl")["snapshots"] == compiled
    assert _run(True, "reload", tmp_path / "compiled.pkl", tmp_path / "s.pkl")["snapshots"] == compiled


@needs_build
def test_old_snapshots_of_either_build_resume_in_the_other(events: Path, tmp_path: Path) -> None:
    portable_form = _run(False, "write", events, tmp_path / "new.pkl")["snapshots"]
    old_compiled = _run(False, "--old", "write", events, tmp_path / "old-c.pkl")["snapshots"]
    old_source = _run(True, "--old", "write", events, tmp_path / "old-s.pkl")["snapshots"]
    # The forms the builds wrote before: unlike each other, unreadable by the other build.
    assert old_compiled != old_source
    assert _run(True, "reload", tmp_path / "old-c.pkl", tmp_path / "s.pkl")["snapshots"] == portable_form
    assert _run(False, "reload", tmp_path / "old-s.pkl", tmp_path / "c.pkl")["snapshots"] == portable_form
