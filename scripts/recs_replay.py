#!/usr/bin/env python
"""Replay the recommender's captured inputs (``scripts/recs_capture.py``) through fresh logics.

``python scripts/recs_replay.py CAPTURE.pickle [--digest]`` (from the tree's root): the
catalog answers each batch of asks, then each customer's lists part takes its calls in
order. Prints CPU seconds of each and, with ``--digest``, a digest of everything emitted
(the same in two builds: the same outputs). Product ids are interned again, as
``operators.recommend.observe`` interns them in the flow. The collector is tuned as the flow
tunes it; ``GCOFF=1`` turns it off (instruction counts without its pauses). Under callgrind:
``valgrind --tool=callgrind --collect-atstart=no``
``--toggle-collect=CPyPy_recommend_audience___AudienceListsLogic___lists_part``
``--toggle-collect=CPyPy_recommend_audience___AudienceListsLogic___lists_eof``
``--toggle-collect=CPyPy_recommend_steps___CatalogLogic___answers``.
"""

import gc
import hashlib
import os
import pickle
import sys
import time

sys.path.insert(0, ".")
from config.settings import load_settings
from operators.rules import load_rules
from flows.step_configs import audience_config
from flows.recommend import recommend_config
from operators.recommend import RecAnswer, RecAsk, Found
from operators.recommend_audience import build_audience_lists
from operators.recommend_steps import build_catalog
from flows import runtime

I = sys.intern  # noqa: E741


def ids(t):
    return tuple(I(p) for p in t)


def ask_of(a):
    return tuple.__new__(RecAsk, (a.user, a.ts_ms, a.kind, None if a.product is None else I(a.product),
                                  None if a.category is None else I(a.category), ids(a.previous), ids(a.exclude)))


def fix(value):
    if type(value) is list:
        return [fix(v) for v in value]
    if type(value) is RecAnswer:
        f = value.successors
        return tuple.__new__(RecAnswer, (ask_of(value.ask), tuple.__new__(Found, (ids(f.products), f.weights, f.total)),
                                         ids(value.popular), ids(value.in_category), value.popular_rank))
    return value


def main():
    calls = pickle.load(open(sys.argv[1], "rb"))
    digest = "--digest" in sys.argv
    settings = load_settings(None)
    rules = load_rules(settings.rules_path)
    cfg = recommend_config(settings, rules=rules)
    make = build_audience_lists(audience_config(rules), cfg)
    catalog = build_catalog(cfg)(None)
    asks = []
    lists = []
    for c in calls:
        if c[0] == "asks":
            asks.append([ask_of(a) for a in pickle.loads(c[1])])
        elif c[0] == "lists":
            lists.append((c[1], c[2], fix(pickle.loads(c[3]))))
        else:
            lists.append((c[1], None, None))
    h = hashlib.sha256()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*runtime.GC_THRESHOLDS)
    if os.environ.get("GCOFF"):
        gc.disable()
    t0 = time.process_time()
    for batch in asks:
        out = catalog.answers(batch)
        if digest:
            h.update(repr(list(out.items())).encode())
    t1 = time.process_time()
    logics = {}
    for n, resting, records in lists:
        logic = logics.get(n)
        if logic is None:
            logic = logics[n] = make(None)
        if records is None:
            out = logic.lists_eof()
        else:
            logic.resting = resting
            out = logic.lists_part(records)
        if digest:
            for r in out:
                to_json = getattr(r, "to_json", None)
                h.update(to_json() if to_json is not None else repr(r).encode())
    t2 = time.process_time()
    print(f"asks {len(asks)} batches {sum(map(len, asks))} asks; lists {len(lists)} calls; "
          f"catalog {t1 - t0:.3f}s lists {t2 - t1:.3f}s digest {h.hexdigest()[:16] if digest else '-'}")


main()
