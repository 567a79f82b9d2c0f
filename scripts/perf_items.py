#!/usr/bin/env python
"""Drive the per-user, models and audience logic without bytewax on a replay file; print costs by item.

Prints microseconds per item by kind (event, tick, end of input: the journey, models and
audience work each causes), the share of ticks and the end of input, events/s, and resident
bytes per user: (RSS just before the end of input - RSS before the first item) / users, keys
dropped on DISCARD as bytewax drops them. A measurement that asserts nothing: run it under
the machine lock, ``flock /tmp/bench.lock python scripts/perf_items.py FILE [--release-s S]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.settings import load_settings  # noqa: E402
from flows.files import ReplayClock, ReplayProgress, read_lines, replay_items  # noqa: E402
from flows.journey import audience_config, journey_config, model_config  # noqa: E402
from flows.runtime import GC_THRESHOLDS  # noqa: E402
from journeyflow.events import DeadLetter  # noqa: E402
from journeyflow.records import EndOfInput, Tick, UserUpdate  # noqa: E402
from operators.rules import load_rules  # noqa: E402

KINDS = ("event", "tick", "eof")


def rss_bytes() -> int:
    """Return this process's resident memory (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--release-s", type=int, default=0, help="[state] idle_release_s (0: off)")
    args = parser.parse_args(argv)
    env = {"JOURNEYFLOW_STATE_IDLE_RELEASE_S": str(args.release_s)} if args.release_s else {}
    settings = load_settings(env=env)
    rules = load_rules(settings.rules_path)
    journey_cfg = journey_config(settings, rules, timers=False)
    models = model_config(settings).build(None)
    audience_cfg = audience_config(rules)
    clock = ReplayClock(settings.replay.tick_s * 1000, settings.replay.tick_window_s * 1000)
    parsed = [journey_cfg.parser.parse(line, f"perf:{n}") for n, line, _ in read_lines(args.file)]
    items = [i for i in replay_items(parsed, clock, ReplayProgress()) if not isinstance(i, DeadLetter)]
    del parsed
    # As the replay command runs (flows/runtime.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

    before = rss_bytes()
    journeys: dict[str, Any] = {}
    audiences: dict[str, Any] = {}
    users: set[str] = set()
    spent = dict.fromkeys(KINDS, 0.0)
    count = dict.fromkeys(KINDS, 0)
    at_end: tuple[int, int, int] | None = None  # RSS, journey keys, audience keys
    clock_s = time.perf_counter
    for item in items:
        kind = "tick" if isinstance(item, Tick) else "eof" if isinstance(item, EndOfInput) else "event"
        if kind == "eof" and at_end is None:
            gc.collect()
            at_end = (rss_bytes(), len(journeys), len(audiences))
        started = clock_s()
        user = item.user
        users.add(user)
        logic = journeys.get(user)
        if logic is None:
            logic = journeys[user] = journey_cfg.build(None)
        out, discard = logic.on_item(item)
        if discard:
            del journeys[user]
        for update in out:
            if isinstance(update, UserUpdate):
                for scored in models.on_item(update)[0]:
                    if isinstance(scored, UserUpdate):
                        audience = audiences.get(scored.user_id)
                        if audience is None:
                            audience = audiences[scored.user_id] = audience_cfg.build(None)
                        if audience.on_item(scored)[1]:
                            del audiences[scored.user_id]
        spent[kind] += clock_s() - started
        count[kind] += 1
    total = sum(spent.values())
    for kind in KINDS:
        per_item = spent[kind] * 1e6 / max(1, count[kind])
        print(f"{kind:6} items {count[kind]:9,} {per_item:7.1f} us/item  share {spent[kind] / total:6.1%}")
    print(f"events/s without bytewax {count['event'] / total:,.0f}; "
          f"ticks and end of input {(spent['tick'] + spent['eof']) / total:.1%} of the time")
    if at_end is not None:
        rss, journey_keys, audience_keys = at_end
        print(f"users {len(users):,}; keys held before the end of input: journey {journey_keys:,}, "
              f"audience {audience_keys:,}; resident bytes per user seen {(rss - before) / len(users):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
