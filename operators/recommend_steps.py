"""The recommender's product side: products (by shard), then popularity (one key).

See :mod:`operators.recommend` for the algorithm and
:mod:`operators.recommend_lists` for the per-customer part. Guarantees:

* Ordering: :func:`split` turns a batch of asks into one item of work per
  product shard, in event order, numbered (``order``); each shard learns and
  answers in that order, so a product answers with what it learned before
  the event, never after. The popularity step takes the shards' answers of a
  batch together and puts them back in the numbered order before counting,
  so popular lists and ranks are as of each event, as if it came first.
* Hops: a product event crosses one keyed hop one item at a time, into the
  audience step, and only as part of its customer's list of answers of the
  batch; into the shards and into the popularity step it travels inside one
  item per shard and batch (the cost of a keyed step is per item and key).
* Product state holds product ids and weights only, never a customer id.
* Memory: popularity keeps at most ``max_products`` counts and
  ``max_categories`` category rankings (least recently seen forgotten);
  each shard keeps at most ``max_products / shards`` products with at most
  ``2 * neighbours`` successors each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from bytewax.operators import StatefulBatchLogic

from operators import recommend as rec
from operators.recommend import Found, RecAnswer, RecAsk, RecommendConfig, ShardWork
from operators.recommend_lists import ListLogic, ListState, build_lists
from operators.recommend_scores import Ranking, learn, ranking_add, ranking_top, successors
from state.serde import decode_state, encode_state

__all__ = [
    "split",
    "batch_order",
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

_ORDER = itemgetter(0)

#: Room for a batch's asks below a batch's number in ``order`` (see :func:`batch_order`).
_BATCH_BITS = 32


def batch_order() -> int:
    """Return the ``order`` of a batch's first ask: later batches get larger numbers.

    A monotonic clock, not a counter: the split keeps no state, and batches
    a worker splits one after the other are microseconds apart at least.
    """
    return time.monotonic_ns() << _BATCH_BITS


def split(cfg: RecommendConfig, asks: list[RecAsk], first: int, *, count: bool = True) -> dict[str, list[ShardWork]]:
    """Return a batch of asks as each shard's work, in event order, numbered from ``first``.

    "Learn ``c`` after ``b``" goes to ``b``'s shard, "what follows ``c``?"
    to ``c``'s (with the pairs that shard learns first). Not ``count``:
    nothing is learned, the question is only asked.
    """
    by_shard: dict[str, list[ShardWork]] = {}
    shards = cfg.shards
    # Product -> shard key for this batch: a dict lookup rather than a call of the cached
    # shard_of per product (an ask names up to window + 1 products).
    known: dict[str, str] = {}
    order = first
    for ask in asks:
        product = ask.product
        if product is None:
            by_shard.setdefault("rec:0", []).append(_new(ShardWork, ("rec:0", (), ask, order)))
            order += 1
            continue
        if not count:
            ask = ask._replace(previous=())
        home = known.get(product)
        if home is None:
            home = known[product] = rec.shard_of(product, shards)
        own: list[tuple[str, str, float]] = []
        for distance, source in enumerate(ask.previous, start=1):
            shard = known.get(source)
            if shard is None:
                shard = known[source] = rec.shard_of(source, shards)
            pair = (source, product, 1.0 / distance)
            if shard == home:
                own.append(pair)
            else:
                _append(by_shard, shard, _new(ShardWork, (shard, (pair,), None, order)))
        _append(by_shard, home, _new(ShardWork, (home, tuple(own), ask, order)))
        order += 1
    return by_shard


def _append(by_shard: dict[str, list[ShardWork]], shard: str, work: ShardWork) -> None:
    # Not setdefault(shard, []): that makes an empty list per call, kept or not.
    listed = by_shard.get(shard)
    if listed is None:
        by_shard[shard] = [work]
    else:
        listed.append(work)


@dataclass(slots=True)
class PopularityState:
    """Decayed product counts, the top products overall and per category."""

    version: int = 2
    origin_ms: int | None = None
    counts: dict[str, float] = field(default_factory=dict)
    overall: Ranking = field(default_factory=lambda: Ranking([], {}))
    categories: dict[str, Ranking] = field(default_factory=dict)


class PopularityLogic(StatefulBatchLogic[list[Found], list[RecAnswer], bytes]):
    """Count product events in event order; answer each customer once per batch.

    Takes each shard's list of :class:`Found` (one item per shard and batch)
    and emits one list of answers per customer, in event order: the hop into
    the audience step costs per item, and a customer has several product
    events in most batches.
    """

    def __init__(self, cfg: RecommendConfig, state: PopularityState) -> None:
        self.cfg = cfg
        self.state = state

    def on_batch(self, values: list[list[Found]]) -> tuple[Iterable[list[RecAnswer]], bool]:
        if len(values) == 1:
            found = values[0]
        else:
            found = [f for group in values for f in group]
            found.sort(key=_ORDER)
        return list(self.answers(found).values()), StatefulBatchLogic.RETAIN

    def on_item(self, value: list[Found]) -> tuple[Iterable[list[RecAnswer]], bool]:
        """Handle one shard's list outside a dataflow."""
        return self.on_batch([value])

    def answers(self, found: list[Found], *, count: bool = True) -> dict[str, list[RecAnswer]]:
        """Return each customer's answers to ``found`` (in event order), counting their products
        first (unless not ``count``: then nothing is counted)."""
        by_user: dict[str, list[RecAnswer]] = {}
        answer = self.answer
        for _, ask, found_successors in found:
            made = answer(ask, found_successors, count)
            listed = by_user.get(ask.user)
            if listed is None:
                by_user[ask.user] = [made]
            else:
                listed.append(made)
        return by_user

    def answer(self, ask: RecAsk, found: tuple[tuple[str, float], ...], count: bool = True) -> RecAnswer:
        """Return the answer to ``ask``: the successors ``found``, the popular fill and the product's
        popularity rank before the event, which is then counted (if ``count``)."""
        state = self.state
        product = ask.product
        popular_rank = None
        ranking = None
        if product is not None and not count:
            ranking = state.categories.get(ask.category) if ask.category is not None else None
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
        return _new(RecAnswer, (ask, found, popular, in_category, popular_rank))

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


class ShardLogic(StatefulBatchLogic[list[ShardWork], list[Found], bytes]):
    """Learn the pairs whose source is in this shard; find the successors of its products.

    Each item is a batch's work for this shard, in event order: a product
    answers with what it had learned before the event, never after. What it
    found goes out as one list per batch (to the popularity step).
    """

    def __init__(self, cfg: RecommendConfig, state: ShardState) -> None:
        self.cfg = cfg
        self.state = state

    def on_batch(self, values: list[list[ShardWork]]) -> tuple[Iterable[list[Found]], bool]:
        out: list[Found] = []
        table = self.state.table
        cfg = self.cfg
        for works in values:
            for _, pairs, ask, order in works:
                for source, successor, weight in pairs:
                    learn(table, cfg, source, successor, weight)
                if ask is not None:
                    found = successors(table, ask.product) if ask.product is not None else ()
                    out.append(_new(Found, (order, ask, found)))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def on_item(self, value: ShardWork) -> tuple[Iterable[list[Found]], bool]:
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
    """The steps chained in one process, event by event, as the dataflow chains them.

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
        return self.batch([ask], learn=learn)

    def batch(self, asks: list[RecAsk], *, learn: bool = True) -> list[Any]:
        """Run a batch of asks through the steps as the dataflow does; return what the lists emitted."""
        found: list[Found] = []
        for shard, works in split(self.cfg, asks, 0, count=learn).items():
            logic = self.shards.get(shard)
            if logic is None:
                logic = self.shards[shard] = ShardLogic(self.cfg, ShardState())
            for listed in logic.on_batch([works])[0]:
                found.extend(listed)
        found.sort(key=_ORDER)
        out: list[Any] = []
        for user, answers in self.popularity.answers(found, count=learn).items():
            out.extend(self.logic(user).on_batch([answers])[0])
        return out

    def logic(self, user: str) -> ListLogic:
        """Return the lists step's logic of ``user`` (a new one if none)."""
        logic = self.lists.get(user)
        if logic is None:
            logic = self.lists[user] = ListLogic(self.cfg, ListState())
        return logic
