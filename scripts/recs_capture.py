#!/usr/bin/env python
"""Capture the recommender's inputs of a ``bench_parts`` drive, to replay them alone.

``python scripts/recs_capture.py FILE OUT.pickle`` (from the tree's root, its .venv) drives
FILE through every step (:mod:`bench_parts`) and records every batch of asks the catalog
answers and every call of a customer's lists part (its records pickled as they arrive, with
the audience part's ``resting`` flag), then the end of input's calls.
``scripts/recs_replay.py`` replays them through fresh logics: the recommender's step alone,
deterministic, for ``valgrind --tool=callgrind`` (recs19). Each customer's logic is named by
its creation number (one per key's lifetime in the drive).
"""

import itertools
import pickle
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
sys.path.insert(0, ".")
import bench_parts  # type: ignore[import-not-found]  # noqa: E402

calls = []  # ("asks", pickled asks) | ("lists", n, resting, pickled records) | ("listseof", n)
numbers = itertools.count()


class Proxy:
    def __init__(self, inner):
        object.__setattr__(self, "_n", next(numbers))
        object.__setattr__(self, "_inner", inner)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def lists_part(self, records):
        calls.append(("lists", self._n, self._inner.resting, pickle.dumps(records, protocol=5)))
        return self._inner.lists_part(records)

    def lists_eof(self):
        calls.append(("listseof", self._n))
        return self._inner.lists_eof()


orig_init = bench_parts._Flow.__init__


def init(self, config, probes):
    orig_init(self, config, probes)
    make = self.make_audience
    self.make_audience = lambda resume: Proxy(make(resume))
    cat = self.catalog
    answers = cat.answers

    class Cat:
        def answers(self, asks, **kw):
            calls.append(("asks", pickle.dumps(asks, protocol=5)))
            return answers(asks, **kw)

        def on_eof(self):
            return cat.on_eof()

    self.catalog = Cat()


bench_parts._Flow.__init__ = init
bench_parts.drive(Path(sys.argv[1]), None)
with open(sys.argv[2], "wb") as fh:
    pickle.dump(calls, fh, protocol=5)
print(len(calls), sum(1 for c in calls if c[0] == "lists"), sum(1 for c in calls if c[0] == "asks"))
