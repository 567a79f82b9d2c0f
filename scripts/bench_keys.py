#!/usr/bin/env python
"""What bytewax itself holds per key of a keyed step (README, "Memory per user").

``python scripts/bench_keys.py [--keys N]`` runs, each in a fresh process, a dataflow
of N distinct keys (one item each, a 16-byte string state per key, as small as a
state gets) through 0, 1, 2 and 3 ``stateful_map`` steps in a row, and prints the
peak RSS growth per key of each (``ru_maxrss`` above the process's RSS before the
run; the input list and the keyed items cost the same in every run). The differences
between rows are bytewax's cost per key per step, the state itself included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

_CHILD = """
import gc, resource, sys
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
n, steps = int(sys.argv[1]), int(sys.argv[2])
items = [f"k{i:015d}" for i in range(n)]
flow = Dataflow("keys")
s = op.key_on("key", op.input("in", flow, TestingSource(items)), lambda x: x)
for step in range(steps):
    s = op.stateful_map(f"s{step}", s, lambda state, value: (value, value))
out = []
op.output("out", s, TestingSink(out))
gc.collect()
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
run_main(flow)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
"""


def peak_growth(keys: int, steps: int) -> int:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(keys), str(steps)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args(argv)
    grown = [peak_growth(args.keys, steps) for steps in range(4)]
    for steps, bytes_ in enumerate(grown):
        extra = "" if steps == 0 else f"; +{(bytes_ - grown[steps - 1]) / args.keys:,.0f} B per key for this step"
        print(f"{steps} keyed steps: peak RSS growth {bytes_ / args.keys:,.0f} B per key{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
