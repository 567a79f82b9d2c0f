#!/usr/bin/env python
"""Where the users' resident memory goes, by step and by type, when the input ends.

``python scripts/bench_memory.py FILE [--config FILE] [--trace] [--top N] [--eof]``
drives every step's logic without bytewax (as ``scripts/bench_parts.py`` does,
in the flow's order), stops when every event and tick is applied, and prints:

* the deep size per user of each keyed step's state (devices, customers'
  journey state, the audience step with its lists), split by the fields of the
  journey state and by object type: objects reachable from two steps are
  counted in the first one walked;
* with ``--trace``, tracemalloc's top source lines and files of what is live
  (slower: 2-3x; run with ``JOURNEYFLOW_PURE=1`` so lines are named in the
  source rather than charged to the compiled module's caller);
* with ``--eof``, the end of input's extra peak: the traced peak while every
  journey logic builds its final update, above what was held (``--trace``);
* with ``--malloc``, where the resident bytes sit when the input ends: glibc's
  ``mallinfo2`` (bytes malloc holds in use and free, from the heap and from
  mmap) and pymalloc's arenas (``sys._debugmallocstats``: its blocks in use and
  free); the objects above 512 bytes bypass pymalloc for malloc;
* with ``--idle DAYS``, last (it changes the states): what an idle release after
  DAYS of a customer's silence could keep, per customer: the profile pruned as
  of then with what else a returning user's rows need (segments, cooldowns, the
  schedule's times), and the lifetime totals alone.

Deep sizes count ``sys.getsizeof`` of every object reachable through
containers, ``__dict__``, ``__slots__`` and mypyc native attributes
(``__mypyc_attrs__``); classes, functions, modules and the step configs
(shared by every user) are not walked. Interned or cached objects shared
between users are counted once, in the first user walked.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import tracemalloc
import types
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_malloc import malloc_figures, malloc_report  # type: ignore[import-not-found]  # noqa: E402
from bench_measure import rss_bytes  # type: ignore[import-not-found]  # noqa: E402
from bench_parts import _Flow  # type: ignore[import-not-found]  # noqa: E402

from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items  # noqa: E402
from journeyflow.events import DeadLetter  # noqa: E402
from journeyflow.step_records import Expect  # noqa: E402

_NOT_WALKED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _unboxed(cls: Any) -> frozenset[str]:
    """A mypyc native class's fields stored in the object itself (C ints, doubles, bools):
    reading one makes a new object, which the instance does not hold."""
    if not dataclasses.is_dataclass(cls):
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(cls) if f.type in ("int", "float", "bool", int, float, bool))


class Sizer:
    """Deep sizes that count each object once across every call (shared objects: first walker)."""

    def __init__(self, skip: Iterable[Any] = ()) -> None:
        self.seen: set[int] = {id(o) for o in skip}
        self.by_type: Counter[str] = Counter()
        self.unboxed: dict[type, frozenset[str]] = {}

    def size(self, root: Any) -> int:
        total = 0
        stack = [root]
        seen = self.seen
        while stack:
            obj = stack.pop()
            if id(obj) in seen or isinstance(obj, _NOT_WALKED):
                continue
            seen.add(id(obj))
            n = sys.getsizeof(obj)
            total += n
            self.by_type[type(obj).__name__] += n
            if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
                continue
            if isinstance(obj, dict):
                stack.extend(obj.keys())
                stack.extend(obj.values())
                continue
            if isinstance(obj, (list, tuple, set, frozenset)):
                stack.extend(obj)
                continue
            cls = type(obj)
            names = getattr(cls, "__mypyc_attrs__", None)
            if names is not None:
                unboxed = self.unboxed.get(cls)
                if unboxed is None:
                    unboxed = self.unboxed[cls] = _unboxed(cls)
                stack.extend(getattr(obj, a) for a in names if hasattr(obj, a) and a != "__dict__" and a not in unboxed)
            d = getattr(obj, "__dict__", None)
            if isinstance(d, dict):
                stack.append(d)
            for klass in cls.__mro__:
                for a in klass.__dict__.get("__slots__", ()):
                    if hasattr(obj, a):
                        stack.append(getattr(obj, a))
            # (Not an array: its items are stored in it, counted by getsizeof; iterating would make
            # and count an int object for each, and reuse of their freed ids would hide others.)
            if hasattr(obj, "__iter__") and cls.__module__ in ("collections", "builtins"):
                try:
                    stack.extend(iter(obj))
                except TypeError:
                    pass
        return total


def drive_to_end(path: Path, config: str | None, malloc: dict[str, int] | None = None) -> tuple[_Flow, int, int]:
    """Apply every event and tick of ``path``; return the flow, the users seen and the RSS at the start
    (and put :func:`malloc_figures` at the start into ``malloc``)."""
    flow = _Flow(config, None)
    progress = ReplayProgress()

    def parsed() -> Any:
        for number, line, _ in read_lines(path):
            yield flow.parser.parse(line, f"{path}:{number}")

    gc.collect()
    base = rss_bytes()
    if malloc is not None:
        malloc.update(malloc_figures())
    for item in replay_items(parsed(), ReplayClock.from_settings(flow.settings), progress):
        if isinstance(item, (Expect, DeadLetter)):
            continue
        flow.after_journey(flow.steps.feed(item), "", 0.0)
    return flow, progress.users, base


def _attrs(obj: Any) -> list[str]:
    names = getattr(type(obj), "__mypyc_attrs__", None)
    if names is None:
        names = [a for k in type(obj).__mro__ for a in k.__dict__.get("__slots__", ())] or list(vars(obj))
    return [n for n in names if n != "__dict__" and hasattr(obj, n) and n not in _unboxed(type(obj))]


def _breakdown(logics: Iterable[Any], per: int, shared: Sizer) -> None:
    """The profile's fields and the logic's own attributes, deep size per user seen (walked apart)."""
    for label, get in (("profile", lambda lg: lg.state.profile), ("logic", lambda lg: lg)):
        sizer = Sizer()
        sizer.seen |= shared.seen
        found: Counter[str] = Counter()
        for logic in logics:
            obj = get(logic)
            if obj is None:
                continue
            if label == "logic":
                sizer.seen.add(id(logic.state))
            for n in _attrs(obj):
                found[n] += sizer.size(getattr(obj, n))
        print(f"  {label}: " + ", ".join(f"{n} {v / per:,.0f}" for n, v in found.most_common(14)))


def report(flow: _Flow, users: int) -> None:
    skip = [flow.journey, flow.audience, flow.rec, flow.settings, flow.parser]
    per = max(1, users)
    devices = flow.steps.devices
    linked = sum(1 for lg in devices.values() if lg.state.linked_to is not None)  # type: ignore[attr-defined]
    own = sum(1 for key in devices if key in flow.steps.customers)
    print(f"users seen {users:,}; devices held {len(devices):,} (holding only a link {linked:,}, keyed by a "
          f"customer's id {own:,}); customers held {len(flow.steps.customers):,}; audience logics "
          f"{len(flow.audiences):,}: keys held per user seen {(len(devices) + len(flow.steps.customers) + len(flow.audiences)) / per:.2f}")
    # Configs shared by every logic: walked first into a throwaway sizer so they are not charged to users.
    shared = Sizer()
    for cfg in skip:
        if cfg is not None:
            shared.size(cfg)
    for name, logics in (
        ("customers (journey)", flow.steps.customers.values()),
        ("devices", flow.steps.devices.values()),
    ):
        sizer = Sizer()
        sizer.seen |= shared.seen
        fields: Counter[str] = Counter()
        total = 0
        for logic in logics:
            state = logic.state  # type: ignore[attr-defined]
            for field_name in _attrs(state):
                fields[field_name] += sizer.size(getattr(state, field_name))
            total += sizer.size(logic)
        total += sum(fields.values())
        if name.startswith("customers"):
            _breakdown(flow.steps.customers.values(), per, shared)
        print(f"\n{name}: {total / per:,.0f} B per user seen")
        for field_name, n in fields.most_common(12):
            print(f"  state.{field_name:<22} {n / per:8,.0f}")
        print(f"  (the logic and state objects) {(total - sum(fields.values())) / per:8,.0f}")
        print("  by type:", ", ".join(f"{t} {n / per:,.0f}" for t, n in sizer.by_type.most_common(10)))
    sizer = Sizer()
    sizer.seen |= shared.seen
    total = sum(sizer.size(a) for a in flow.audiences.values())
    print(f"\naudience (with lists): {total / per:,.0f} B per user seen")
    print("  by type:", ", ".join(f"{t} {n / per:,.0f}" for t, n in sizer.by_type.most_common(10)))
    if flow.audiences:
        one = next(iter(flow.audiences.values()))
        names = getattr(type(one), "__mypyc_attrs__", None) or list(getattr(one, "__dict__", {}))
        parts: Counter[str] = Counter()
        s2 = Sizer()
        s2.seen |= shared.seen
        for a in flow.audiences.values():
            for part in names:
                if part != "__dict__" and hasattr(a, part):
                    parts[part] += s2.size(getattr(a, part))
        for part, v in parts.most_common(10):
            print(f"  audience.{part:<22} {v / per:8,.0f}")
    for name, obj in (("models", flow.models), ("loop", flow.loop), ("catalog", flow.catalog)):
        sizer = Sizer()
        sizer.seen |= shared.seen
        print(f"{name}: {sizer.size(obj) / per:,.0f} B per user seen (global)")


def released_sizes(flow: _Flow, days: float) -> None:
    """Print what a release after ``days`` of silence could keep per customer (prunes the profiles)."""
    from operators.journey_state import JourneyState
    from operators.profiles import Profile, prune

    shared = Sizer()
    for cfg in (flow.journey, flow.settings, flow.parser):
        shared.size(cfg)
    pruned, totals = Sizer(), Sizer()
    pruned.seen |= shared.seen
    totals.seen |= shared.seen
    kept: list[Any] = []  # (alive while sized: a freed object's id can be reused)
    logics = [lg for lg in flow.steps.customers.values() if lg.state.profile is not None]  # type: ignore[attr-defined]
    n_pruned = n_totals = 0
    for logic in logics:
        state, profile = logic.state, logic.state.profile
        prune(profile, flow.journey.profiles, (state.max_ts_ms or 0) + int(days * 86_400_000))
        profile.cart = {}  # (a cart idle that long is abandoned: its trigger has fired)
        record = JourneyState(
            user=state.user, profile=profile, segments=state.segments, evaluated_ms=state.evaluated_ms,
            cooldowns=state.cooldowns, snapshot_ms=state.snapshot_ms, scored_ms=state.scored_ms,
        )
        counters = {f.name: getattr(profile, f.name) for f in dataclasses.fields(Profile)
                    if f.type in ("int", "float", "bool", "int | None")}
        lifetime = JourneyState(user=state.user, profile=Profile(**counters))
        kept.extend((record, lifetime))
        n_pruned += pruned.size(record)
        n_totals += totals.size(lifetime)
    per = max(1, len(logics))
    print(f"\nreleased after {days:g} days idle, {len(logics):,} customers: the pruned profile and schedule "
          f"{n_pruned / per:,.0f} B, lifetime totals alone {n_totals / per:,.0f} B per customer")
    print("  pruned, by type:", ", ".join(f"{t} {v / per:,.0f}" for t, v in pruned.by_type.most_common(8)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--config")
    parser.add_argument("--trace", action="store_true", help="tracemalloc's top lines and files")
    parser.add_argument("--eof", action="store_true", help="with --trace: the end of input's traced peak")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--malloc", action="store_true", help="malloc's and pymalloc's bytes in use and free")
    parser.add_argument("--idle", type=float, help="days: what an idle release could keep (see above)")
    args = parser.parse_args(argv)
    if args.trace:
        tracemalloc.start(1)
    before: dict[str, int] = {}
    flow, users, base = drive_to_end(args.file, args.config, before if args.malloc else None)
    gc.collect()
    print(f"RSS growth when the input ends: {(rss_bytes() - base) / max(1, users):,.0f} B per user seen")
    if args.malloc:
        malloc_report(users, before, rss_bytes() - base)
    if args.trace:
        held, _ = tracemalloc.get_traced_memory()
        print(f"traced live when the input ends: {held / max(1, users):,.0f} B per user seen")
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        for kind in ("filename", "lineno"):
            print(f"\ntop {kind}s (B per user seen):")
            for stat in snap.statistics(kind)[: args.top]:
                frame = stat.traceback[0]
                where = frame.filename.replace(str(HERE.parent) + "/", "")
                print(f"  {stat.size / max(1, users):8,.0f}  {stat.count:9,}  {where}:{frame.lineno if kind == 'lineno' else ''}")
        if args.eof:
            tracemalloc.reset_peak()
            out = flow.steps.finish()
            peak = tracemalloc.get_traced_memory()[1]
            print(f"\nend of input, the journey step's final records: traced peak {peak / max(1, users):,.0f} B per "
                  f"user seen ({(peak - held) / max(1, users):,.0f} above what was held); {len(out):,} records")
            del out
    report(flow, users)
    if args.idle is not None:
        released_sizes(flow, args.idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
