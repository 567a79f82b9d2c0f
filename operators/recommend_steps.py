"""The recommender's product side: popularity (one key) and products (by shard).

See :mod:`operators.recommend` for the algorithm and
:mod:`operators.recommend_lists` for the per-customer step. Guarantees:

* Ordering: one customer's asks reach the popularity step, then each shard,
  in the order the journey step emitted them (one key, one worker each), so
  a product learns its successors in event order. Both steps take a whole
  batch at a time (``stateful_batch``): the popularity step sends each
  shard one item per batch, its work in event order, so a product answers
  with what it learned before the event, never after.
* Product state holds product ids and weights only, never a customer id.
* Memory: popularity keeps at most ``max_products`` counts and
  ``max_categories`` category rankings (least recently seen forgotten);
  each shard keeps at most ``max_products / shards`` products with at most
  ``2 * neighbours`` successors each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.operators import StatefulBatchLogic

from operators import recommend as rec
from operators.recommend import RecAnswer, RecAsk, RecommendConfig, ShardWork
from operators.recommend_lists import ListLogic, ListState, build_lists
from operators.recommend_scores import Ranking, learn, ranking_add, ranking_top, successors
from state.serde import decode_state, encode_state

__all__ = [
    "PopularityState",
    "PopularityLogic",
    "ShardState",
    "ShardLogic",
    "build_popularity",
    "build_shard",
    "build_lists",
    "Chain",
]

#: Forward decay keeps scores comparable without touching old ones; rebase
#: them before 2**exponent gets near the float limit.
_REBASE_EXPONENT = 500.0

# The records are named tuples built with tuple.__new__: a third of the cost
# of calling the class, and one is made per product event.
_new = tuple.__new__


@dataclass(slots=True)
class PopularityState:
    """Decayed product counts, the top products overall and per category."""

    version: int = 2
    origin_ms: int | None = None
    counts: dict[str, float] = field(default_factory=dict)
    overall: Ranking = field(default_factory=lambda: Ranking([], {}))
    categories: dict[str, Ranking] = field(default_factory=dict)


class PopularityLogic(StatefulBatchLogic[RecAsk, tuple[str, list[ShardWork]], bytes]):
    """Count product events; split a batch of asks into one item of work per product shard.

    One item per shard and batch, rather than one or more per event, keeps
    the hop to the product step cheap: its cost is per item and per key.
    """

    def __init__(self, cfg: RecommendConfig, state: PopularityState) -> None:
        self.cfg = cfg
        self.state = state
        # Product -> shard key, remembered (derived, not state: a crc32 and a
        # string per lookup otherwise); cleared when it outgrows the products.
        self._shards: dict[str, str] = {}

    def on_batch(self, values: list[RecAsk]) -> tuple[Iterable[tuple[str, list[ShardWork]]], bool]:
        by_shard: dict[str, list[ShardWork]] = {}
        work = self.work
        for ask in values:
            work(ask, by_shard)
        return list(by_shard.items()), StatefulBatchLogic.RETAIN

    def on_item(self, value: RecAsk) -> tuple[Iterable[ShardWork], bool]:
        """Handle one ask outside a dataflow: return its shard work, in order."""
        by_shard: dict[str, list[ShardWork]] = {}
        self.work(value, by_shard)
        return [work for works in by_shard.values() for work in works], StatefulBatchLogic.RETAIN

    def shard(self, product: str) -> str:
        """Return the key of ``product``'s shard."""
        shard = self._shards.get(product)
        if shard is None:
            if len(self._shards) >= 2 * self.cfg.max_products:
                self._shards.clear()
            shard = self._shards[product] = rec.shard_of(product, self.cfg.shards)
        return shard

    def work(self, ask: RecAsk, by_shard: dict[str, list[ShardWork]], *, count: bool = True) -> None:
        """Add the shard work of ``ask`` to ``by_shard``, counting its product first (unless not
        ``count``: then nothing is counted or learned, the question is only asked)."""
        state = self.state
        product = ask.product
        popular_rank = None
        ranking = None
        if product is not None and not count:
            ranking = state.categories.get(ask.category) if ask.category is not None else None
            ask = ask._replace(previous=())
        elif product is not None:
            if ask.kind == "view" and product in state.overall.scores:
                index = state.overall.top.index(product)
                popular_rank = index if index < rec.EVAL_DEPTH else None
            if ask.kind != "remove":
                ranking = self._count(product, ask.category, ask.ts_ms)
            elif ask.category is not None:
                ranking = state.categories.get(ask.category)
        popular = ranking_top(state.overall)
        in_category = ranking_top(ranking) if ranking is not None else ()
        if product is None:
            by_shard.setdefault("rec:0", []).append(_new(ShardWork, ("rec:0", (), ask, popular, in_category, None)))
            return
        home = self.shard(product)
        own: list[tuple[str, str, float]] = []
        for distance, source in enumerate(ask.previous, start=1):
            shard = self.shard(source)
            pair = (source, product, 1.0 / distance)
            if shard == home:
                own.append(pair)
            else:
                by_shard.setdefault(shard, []).append(_new(ShardWork, (shard, (pair,), None, (), (), None)))
        work = _new(ShardWork, (home, tuple(own), ask, popular, in_category, popular_rank))
        by_shard.setdefault(home, []).append(work)

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def _count(self, product: str, category: str | None, ts_ms: int) -> Ranking | None:
        cfg = self.cfg
        state = self.state
        if state.origin_ms is None:
            state.origin_ms = ts_ms
        exponent = (ts_ms - state.origin_ms) / cfg.popularity_half_life_ms
        if exponent > _REBASE_EXPONENT:
            self._rebase(ts_ms)
            exponent = 0.0
        counts = state.counts
        score = counts.pop(product, 0.0) + math.pow(2.0, exponent)
        if len(counts) >= cfg.max_products:
            forgotten = next(iter(counts))
            del counts[forgotten]
            _drop(state.overall, forgotten)
            for ranking in state.categories.values():
                _drop(ranking, forgotten)
        counts[product] = score  # re-inserted last: least recently seen first
        ranking_add(state.overall, product, score, cfg.popular)
        if category is None:
            return None
        kept = state.categories.pop(category, None)
        if kept is None:
            kept = Ranking([], {})
            if len(state.categories) >= cfg.max_categories:
                del state.categories[next(iter(state.categories))]
        state.categories[category] = kept
        ranking_add(kept, product, score, cfg.popular)
        return kept

    def _rebase(self, ts_ms: int) -> None:
        state = self.state
        factor = math.pow(2.0, -(ts_ms - state.origin_ms) / self.cfg.popularity_half_life_ms)  # type: ignore[operator]
        state.origin_ms = ts_ms
        state.counts = {p: s * factor for p, s in state.counts.items()}
        for ranking in (state.overall, *state.categories.values()):
            ranking.scores = {p: s * factor for p, s in ranking.scores.items()}


def _drop(ranking: Ranking, product: str) -> None:
    if product in ranking.scores:
        del ranking.scores[product]
        ranking.top.remove(product)
        ranking.view = None


@dataclass(slots=True)
class ShardState:
    """The products of one shard and their successors."""

    version: int = 2
    table: dict[str, list[Any]] = field(default_factory=dict)


class ShardLogic(StatefulBatchLogic[list[ShardWork], RecAnswer, bytes]):
    """Learn the pairs whose source is in this shard; answer asks about its products.

    Each item is a batch's work for this shard, in event order: a product
    answers with what it had learned before the event, never after.
    """

    def __init__(self, cfg: RecommendConfig, state: ShardState) -> None:
        self.cfg = cfg
        self.state = state

    def on_batch(self, values: list[list[ShardWork]]) -> tuple[Iterable[RecAnswer], bool]:
        out: list[RecAnswer] = []
        table = self.state.table
        cfg = self.cfg
        for works in values:
            for _, pairs, ask, popular, in_category, popular_rank in works:
                for source, successor, weight in pairs:
                    learn(table, cfg, source, successor, weight)
                if ask is not None:
                    found = successors(table, ask.product) if ask.product is not None else ()
                    out.append(_new(RecAnswer, (ask, found, popular, in_category, popular_rank)))
        return out, StatefulBatchLogic.RETAIN

    def on_item(self, value: ShardWork) -> tuple[Iterable[RecAnswer], bool]:
        """Handle one event's work outside a dataflow."""
        return self.on_batch([[value]])

    def snapshot(self) -> bytes:
        return encode_state(self.state)


def build_popularity(cfg: RecommendConfig) -> Any:
    """Return the popularity step's builder."""
    return lambda resume: PopularityLogic(cfg, PopularityState() if resume is None else decode_state(resume, PopularityState))


def build_shard(cfg: RecommendConfig) -> Any:
    """Return the product step's builder."""
    return lambda resume: ShardLogic(cfg, ShardState() if resume is None else decode_state(resume, ShardState))


class Chain:
    """The three steps chained in one process, event by event, as the dataflow chains them.

    The offline evaluation, the benchmark and the tests drive the real
    logic through this one definition. ``recent`` plays the journey step's
    part (each customer's last products).
    """

    def __init__(self, cfg: RecommendConfig) -> None:
        self.cfg = cfg
        self.popularity = PopularityLogic(cfg, PopularityState())
        self.shards: dict[str, ShardLogic] = {}
        self.lists: dict[str, ListLogic] = {}
        self.recent: dict[str, tuple[tuple[str, int], ...]] = {}

    def event(self, event: Any, cart: Any = (), bought: Any = (), *, learn: bool = True) -> list[Any]:
        """Run a customer's event (``user``, ``type``, ``ts_ms``, ``product_id``, ``category``,
        ``items``) through the steps; return what the lists step emitted."""
        ask, self.recent[event.user] = rec.observe(self.cfg, self.recent.get(event.user, ()), event, cart, bought)
        return [] if ask is None else self.ask(ask, learn=learn)

    def ask(self, ask: RecAsk, *, learn: bool = True) -> list[Any]:
        """Run one ask through the steps (not ``learn``: nothing is counted or learned)."""
        by_shard: dict[str, list[ShardWork]] = {}
        self.popularity.work(ask, by_shard, count=learn)
        out: list[Any] = []
        for shard, works in by_shard.items():
            logic = self.shards.get(shard)
            if logic is None:
                logic = self.shards[shard] = ShardLogic(self.cfg, ShardState())
            for answer in logic.on_batch([works])[0]:
                out.extend(self.logic(answer.ask.user).on_item(answer)[0])
        return out

    def logic(self, user: str) -> ListLogic:
        """Return the lists step's logic of ``user`` (a new one if none)."""
        logic = self.lists.get(user)
        if logic is None:
            logic = self.lists[user] = ListLogic(self.cfg, ListState())
        return logic
