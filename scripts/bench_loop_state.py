#!/usr/bin/env python
"""Measure the loop step's snapshot (``operators/loop.py``, key ``loop``) after N triggers.

bytewax asks the loop's one key for its state at every epoch, so what one
``snapshot()`` costs is paid every ``[recovery] snapshot_s``. This builds the
step with the shipped rules (``config/rules.toml``), feeds it N triggers as the
live benchmark makes them (``product_interest`` of new users, a product id,
category and count as payload; one in 20 a ``cart_abandonment`` with a list of
products) and a purchase of every 10th user (goal events kept for the reorder
margin), all within one hour of event time so every trigger is still in its
window; then it times ``snapshot()`` (median of 7) and decoding it back.

Run base and branch alternately under the machine lock, e.g.::

    flock /tmp/bench.lock sh -c 'PYTHONPATH=/tmp/base10 python scripts/bench_loop_state.py;
                                  python scripts/bench_loop_state.py'
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _items(n: int) -> list[object]:
    from journeyflow.records import Trigger
    from operators.goals import GoalEvent

    t0 = 1_785_000_000_000
    items: list[object] = []
    for i in range(n):
        user = f"bench-user-{i:07d}"
        ts = t0 + i * 400
        if i % 20 == 19:
            trigger = Trigger(
                f"{i:016x}cafe", "cart_abandonment", user, ts, None, "treatment",
                {"products": [f"p-{i % 500}", f"p-{(i * 7) % 500}"], "cart_value": 59.9},
            )
        else:
            trigger = Trigger(
                f"{i:016x}beef", "product_interest", user, ts, f"e-{i:09d}", "treatment",
                {"product_id": f"p-{i % 500}", "category": f"c-{i % 20}", "views_24h": 4},
            )
        items.append(trigger)
        if i % 10 == 0:
            event_id = f"buy-{i:09d}"
            fields = {"event_id": event_id, "type": "purchase", "product_id": f"p-{i % 500}", "category": "c-1",
                      "price": 19.9, "quantity": 1, "order_id": f"o-{i}", "revenue": 19.9, "channel": "web",
                      "campaign": None}
            items.append(GoalEvent(user, ts + 100, event_id, "purchase", 19.9, fields))
    return items


def measure(n: int, repeat: int) -> dict[str, float]:
    from config.settings import load_settings
    from flows.loop import loop_config
    from operators.rules import load_rules

    settings = load_settings()
    cfg = loop_config(settings, load_rules(ROOT / "config" / "rules.toml"))
    logic = cfg.build(None)
    for item in _items(n):
        logic.on_item(item)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        blob = logic.snapshot()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    resumed = cfg.build(blob)
    decode_s = time.perf_counter() - start
    if resumed.snapshot() != blob:
        sys.exit("bench_loop_state: a decoded snapshot must encode to the same bytes; got different bytes instead")
    return {"triggers": n, "bytes": len(blob), "snapshot_ms": statistics.median(times) * 1000,
            "decode_ms": decode_s * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench_loop_state.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, nargs="+", default=[1_000, 7_500, 30_000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import operators.loop

    print(f"loop snapshot ({operators.loop.__file__})")
    for n in args.triggers:
        m = measure(n, args.repeat)
        print(f"  {m['triggers']:>7,} triggers in their window: {m['bytes']:>10,} bytes, "
              f"snapshot {m['snapshot_ms']:8.2f} ms, decode {m['decode_ms']:8.2f} ms")


if __name__ == "__main__":
    main()
