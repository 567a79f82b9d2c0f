"""``journeyflow evaluate --recommendations``: next-click quality of the recommender.

Sessions of product clicks (generated events, or a click log: one row per
click with a session id, an item id and a time) are split by time: sessions
that start in the last ``test_share`` of the period are the test set. For
each test session, every next click is held out in turn and predicted from
the clicks before it (the standard protocol of Ludewig & Jannach 2018):
consecutive repeats are merged, sessions of one click dropped, and test
clicks on items never seen in training are not scored.

Side by side, on the same split and the same held-out clicks:

* ``popularity``: the 20 items clicked most in training;
* ``sequential_rules``: offline sequential rules trained on the training
  sessions (successors within 10 steps, weight 1/distance, 20 kept per item),
  predicting from the session's last click;
* ``journeyflow``: the dataflow's own recommender steps
  (:mod:`operators.recommend_steps`, driven here without a dataflow), fed
  every click in time order: it learns through the test period as it would
  live, but never from a click before that click is predicted;
* ``journeyflow_frozen``: the same, learning nothing after the split.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from journeyflow.errors import JourneyflowError
from journeyflow.recs_clicks import Click, check_sources, iter_sources, read_events
from operators import recommend as rec
from operators.recommend import RecommendConfig
from operators.recommend_steps import Chain

__all__ = ["split_sessions", "evaluate_recommendations", "format_recommendations", "generated_regime", "run"]

#: The generated sessions judged when the command names no size: the README's measured regime.
GENERATED_USERS, GENERATED_DAYS, GENERATED_SEED = 5000, 30, 11


def generated_regime(users: int | None, days: int | None, seed: int | None) -> tuple[int, int, int]:
    """Return (users, days, seed) of the generated sessions, each the default when not given."""
    return (
        GENERATED_USERS if users is None else users,
        GENERATED_DAYS if days is None else days,
        GENERATED_SEED if seed is None else seed,
    )

@dataclass(frozen=True, slots=True)
class _Split:
    train: list[list[Click]]
    test: list[list[Click]]
    clicks: list[tuple[Click, bool, int]]
    """Every click in time order: (click, in the test set, position in its session)."""


def split_sessions(clicks: Iterable[Click], test_share: float) -> _Split:
    """Return the sessions, cleaned and split by the start time of each session."""
    by_session: dict[str, list[Click]] = defaultdict(list)
    for click in clicks:
        by_session[click.session].append(click)
    sessions = []
    for rows in by_session.values():
        rows.sort(key=itemgetter(1))
        merged = [c for i, c in enumerate(rows) if i == 0 or c.item != rows[i - 1].item]
        if len(merged) >= 2:
            sessions.append(merged)
    if not sessions:
        msg = "the click log must hold sessions of at least two different clicks; got none"
        raise JourneyflowError(msg)
    first = min(s[0].ts_ms for s in sessions)
    last = max(s[0].ts_ms for s in sessions)
    cut = last - (last - first) * test_share
    train = [s for s in sessions if s[0].ts_ms < cut]
    test = [s for s in sessions if s[0].ts_ms >= cut]
    ordered = [(c, s[0].ts_ms >= cut, i) for s in sessions for i, c in enumerate(s)]
    ordered.sort(key=lambda x: (x[0].ts_ms, x[0].session, x[2]))
    return _Split(train, test, ordered)


def _sequential_rules(train: list[list[Click]], steps: int = 10, keep: int = 20) -> dict[str, tuple[str, ...]]:
    rules: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    for session in train:
        items = [c.item for c in session]
        for i, source in enumerate(items):
            for d in range(1, min(steps, len(items) - 1 - i) + 1):
                if items[i + d] != source:
                    rules[source][items[i + d]] += 1.0 / d
    return {s: tuple(p for p, _ in heapq.nlargest(keep, c.items(), key=itemgetter(1))) for s, c in rules.items()}


def evaluate_recommendations(clicks: list[Click], cfg: RecommendConfig, test_share: float = 0.1) -> dict[str, Any]:
    """Return hit rate and MRR at 10 and 20 of every method on the held-out next clicks."""
    started = time.monotonic()
    split = split_sessions(clicks, test_share)
    known = {c.item for s in split.train for c in s}
    popular = tuple(p for p, _ in Counter(c.item for s in split.train for c in s).most_common(rec.EVAL_DEPTH))
    rules = _sequential_rules(split.train)
    sums: dict[str, Counter[str]] = {name: Counter() for name in ("popularity", "sequential_rules", "journeyflow", "journeyflow_frozen")}
    evaluated = 0
    online, frozen = _Online(cfg), _Online(cfg)
    for click, in_test, position in split.clicks:
        target = in_test and position > 0 and click.item in known
        if target:
            evaluated += 1
            previous = online.previous_item(click.session)
            _add(sums["popularity"], rec.position_of(popular, click.item))
            _add(sums["sequential_rules"], rec.position_of(rules.get(previous, ()) if previous is not None else (), click.item))
            _add(sums["journeyflow"], rec.position_of(online.ranked(click.session), click.item))
            _add(sums["journeyflow_frozen"], rec.position_of(frozen.ranked(click.session), click.item))
        online.click(click, learn=True)
        frozen.click(click, learn=not in_test)
    methods = {name: _figures(s, evaluated) for name, s in sums.items()}
    return {
        "clicks": len(split.clicks),
        "items": len({c.item for c, _, _ in split.clicks}),
        "train_sessions": len(split.train),
        "test_sessions": len(split.test),
        "evaluated": evaluated,
        "methods": methods,
        "elapsed_s": round(time.monotonic() - started, 1),
        "settings": {"window": cfg.window, "decay": cfg.decay, "neighbours": cfg.neighbours, "max_products": cfg.max_products},
    }


def _add(sums: Counter[str], position: int | None) -> None:
    sums.update(rec.hit_figures(position))


def _figures(sums: Counter[str], evaluated: int) -> dict[str, float]:
    scale = 1.0 / evaluated if evaluated else 0.0
    return {
        "hit_rate_10": round(sums["hit_10"] * scale, 4),
        "mrr_10": round(sums["rr_10"] * scale, 4),
        "hit_rate_20": round(sums["hit_20"] * scale, 4),
        "mrr_20": round(sums["rr_20"] * scale, 4),
    }


class _Event(NamedTuple):
    user: str
    type: str
    ts_ms: int
    product_id: str
    category: str | None
    items: tuple[()] = ()


class _Online:
    """The recommender's steps as the dataflow runs them (:class:`Chain`), one click at a time."""

    def __init__(self, cfg: RecommendConfig) -> None:
        self.chain = Chain(cfg)

    def previous_item(self, session: str) -> str | None:
        recent = self.chain.recent.get(session)
        return recent[0][0] if recent else None

    def ranked(self, session: str) -> tuple[str, ...]:
        logic = self.chain.lists.get(session)
        return logic.ranked if logic is not None else ()

    def click(self, click: Click, *, learn: bool) -> None:
        # Frozen (not learn): the question is asked, nothing is counted or learned.
        self.chain.event(_Event(click.session, "product_view", click.ts_ms, click.item, click.category), learn=learn)


def format_recommendations(report: dict[str, Any], title: str) -> str:
    """Return the report as a small table."""
    lines = [
        f"{title}: {report['clicks']:,} clicks, {report['items']:,} items, "
        f"{report['train_sessions']:,} training / {report['test_sessions']:,} test sessions, "
        f"{report['evaluated']:,} held-out next clicks",
        f"  {'method':<20} {'HR@10':>7} {'MRR@10':>7} {'HR@20':>7} {'MRR@20':>7}",
    ]
    for name, f in report["methods"].items():
        lines.append(
            f"  {name:<20} {f['hit_rate_10']:>7.4f} {f['mrr_10']:>7.4f} {f['hit_rate_20']:>7.4f} {f['mrr_20']:>7.4f}"
        )
    return "\n".join(lines)


def run(
    out: Path,
    cfg: RecommendConfig,
    *,
    clicks: list[Path],
    users: int,
    days: int,
    seed: int,
    test_share: float = 0.1,
) -> dict[str, Any]:
    """Evaluate on each click log in ``clicks`` and on generated sessions; write ``out/recommendations.json``."""
    from journeyflow import generator

    check_sources(clicks)
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, Any] = {}
    for name, rows in iter_sources(clicks, out / "downloads"):
        reports[name] = evaluate_recommendations(rows, cfg, test_share)
        print(format_recommendations(reports[name], name), flush=True)
    if users > 0:
        events = out / f"events-{users}u-{days}d-{seed}.jsonl.gz"
        if not events.exists():
            generator.generate(generator.GeneratorConfig(users=users, days=days, seed=seed), events, None)
        reports[events.name] = evaluate_recommendations(read_events(events), cfg, test_share)
        print(format_recommendations(reports[events.name], f"generated {events.name}"), flush=True)
    (out / "recommendations.json").write_bytes(orjson.dumps(reports, option=orjson.OPT_INDENT_2) + b"\n")
    return reports
