"""Snapshots of every user a replay leaves held in the device and customer steps, for
tests of snapshots across builds (tests/state/test_portable.py) and a size measurement.

Run as ``python -m tests.state.user_snapshots write EVENTS OUT`` (the snapshots of
EVENTS' users) or ``... reload IN OUT`` (each snapshot of IN resumed and snapshotted
again); OUT is a pickled ``{"build": ..., "snapshots": {key: bytes}}``. With ``--old``
the snapshots are written in pickle's own form (as before state/portable.py).
``... sizes EVENTS`` prints the bytes per held user in both forms (README, "Code layout").
"""

from __future__ import annotations

import argparse
import copyreg
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from config.settings import load_settings
from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items
from flows.inprocess import PerUserSteps
from flows.step_configs import event_parser, journey_config
from journeyflow.events import DeadLetter
from operators.rules import load_rules

__all__ = ["build_name", "main", "user_snapshots"]


def build_name() -> str:
    """Return ``compiled`` or ``source``: which build of the per-user modules runs here."""
    import operators.journey_state

    return "compiled" if (operators.journey_state.__file__ or "").endswith(".so") else "source"


def _steps() -> PerUserSteps:
    settings = load_settings(env={})
    journey = journey_config(settings, load_rules(settings.rules_path), timers=False)
    return PerUserSteps(journey, settings.identity.link_idle_s * 1000)


def user_snapshots(path: Path) -> dict[str, bytes]:
    """Replay ``path`` through the device and customer steps; return each held key's snapshot."""
    settings = load_settings(env={})
    steps = _steps()
    parser = event_parser(settings)
    parsed = (parser.parse(line, f"{path}:{number}") for number, line, _ in read_lines(path))
    for item in replay_items(parsed, ReplayClock.from_settings(settings), ReplayProgress()):
        if not isinstance(item, DeadLetter):
            steps.feed(item)
    return {
        **{f"device/{key}": logic.snapshot() for key, logic in steps.devices.items()},
        **{f"customer/{key}": logic.snapshot() for key, logic in steps.customers.items()},
    }


def resumed(snapshots: dict[str, bytes]) -> dict[str, bytes]:
    """Return each snapshot's step logic built from it, snapshotted again."""
    steps = _steps()
    builders: dict[str, Any] = {"device": steps.devices_cfg.build, "customer": steps.journey_cfg.build}
    return {key: builders[key.split("/")[0]](data).snapshot() for key, data in snapshots.items()}


def old_form(snapshots: dict[str, bytes]) -> dict[str, bytes]:
    """Return the snapshots re-encoded in pickle's own form (this build's, as before)."""
    from state.serde import decode_state

    keys = list(snapshots)
    encoded, _ = _old_pickles([decode_state(snapshots[key], object) for key in keys])
    return dict(zip(keys, encoded))


def _old_pickles(states: list[Any]) -> tuple[list[bytes], float]:
    """Return ``states`` pickled in pickle's own form, and the seconds that took."""
    from state import portable

    classes = portable.register_compiled_states()
    for cls in classes:
        copyreg.dispatch_table.pop(cls, None)
    try:
        started = time.perf_counter()
        encoded = [pickle.dumps(state, protocol=5) for state in states]
        return encoded, time.perf_counter() - started
    finally:
        for cls in classes:
            copyreg.pickle(cls, portable.reducer(cls))


def sizes(path: Path) -> dict[str, Any]:
    """Return the snapshots' bytes per held key, portable and in pickle's own form, and encoding times."""
    from state.serde import decode_state

    snapshots = user_snapshots(path)
    states = [decode_state(data, object) for data in snapshots.values()]
    started = time.perf_counter()
    portable_bytes = sum(len(pickle.dumps(state, protocol=5)) for state in states)
    portable_s = time.perf_counter() - started
    old, old_s = _old_pickles(states)
    old_bytes = sum(map(len, old))
    keys = len(states)
    return {
        "build": build_name(),
        "keys": keys,
        "portable_bytes_per_key": round(portable_bytes / keys),
        "old_bytes_per_key": round(old_bytes / keys),
        "portable_to_old": round(portable_bytes / old_bytes, 3),
        "portable_encode_us_per_key": round(portable_s / keys * 1e6, 1),
        "old_encode_us_per_key": round(old_s / keys * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["write", "reload", "sizes"])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--old", action="store_true", help="write pickle's own form (as before state/portable.py)")
    args = parser.parse_args(argv)
    if args.mode == "sizes":
        print(sizes(args.source))
        return 0
    if args.mode == "write":
        snapshots = user_snapshots(args.source)
    else:
        snapshots = resumed(pickle.loads(args.source.read_bytes())["snapshots"])
    if args.old:
        snapshots = old_form(snapshots)
    args.out.write_bytes(pickle.dumps({"build": build_name(), "snapshots": snapshots}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
