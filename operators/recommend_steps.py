"""The recommender's product side: one step, keyed by one key, for every product.

See :mod:`operators.recommend` for the algorithm and
:mod:`operators.recommend_lists` for the per-customer part. The catalog step
(:class:`CatalogLogic`) takes a batch's asks as one item and, for each in
event order, learns the pairs it brings, finds its product's successors,
counts it in the popularity rankings and answers it; it sends each customer
one list of :class:`~operators.recommend.RecAnswer` per batch. Guarantees:

* Ordering: asks are answered in the order they arrive (a customer's in
  the order the journey step emitted them), each with what was learned and
  counted before it, never after.
* Hops: a product event crosses one keyed hop one item at a time, into the
  audience step, and only as part of its customer's list of answers of the
  batch; into the catalog it travels inside one item per batch.
* Why one key is enough: the catalog costs about a tenth of the models step,
  which is global too (see README, Recommendations, for the figures); the
  sharded path it replaced (a split, 64 product shards and a global
  popularity step after them) cost more in records and hops than its work
  spread over workers could save.
* Product state holds product ids and weights only, never a customer id.
* Memory: at most ``max_products`` products with at most ``2 * neighbours``
  successors each, ``max_products`` popularity counts and ``max_categories``
  category rankings (least recently seen forgotten, each table on its own).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from bytewax.operators import StatefulBatchLogic

from operators import recommend as rec
from operators.recommend import NOTHING_FOUND, Found, RecAnswer, RecAsk, RecommendConfig, index_of
from operators.recommend_lists import ListLogic, ListState, build_lists
from operators.recommend_scores import Ranking, ranking_add, ranking_top
from operators.recommend_successors import forget_answers, learn, successors
from state.serde import decode_state, encode_state

__all__ = [
    "PopularityState",
    "Popularity",
    "build_lists",
    "CatalogState",
    "CatalogLogic",
    "build_catalog",
    "Chain",
]

#: Forward decay keeps scores comparable without touching old ones; rebase
#: them before 2**exponent gets near the float limit.
_REBASE_EXPONENT: Final = 500.0

# The records are named tuples built with tuple.__new__: a third of the cost
# of calling the class, and one is made per product event. Both names Final: compiled,
# each is then a C static, where a plain module name (and an imported class) is a look-up
# in the module's dict at every use (about 140 instructions each).
_new: Final = tuple.__new__
_ANSWER: Final = RecAnswer
_RETAIN: Final = StatefulBatchLogic.RETAIN  # (bytewax's flag: a look-up and an attribute read)


@dataclass(slots=True)
class PopularityState:
    """Decayed product counts, the top products overall and per category."""

    version: int = 2
    origin_ms: int | None = None
    counts: dict[str, float] = field(default_factory=dict)
    overall: Ranking = field(default_factory=lambda: Ranking([], {}))
    categories: dict[str, Ranking] = field(default_factory=dict)


class Popularity:
    """Count product events in event order, for the catalog step (:meth:`answer`)."""

    def __init__(self, cfg: RecommendConfig, state: PopularityState) -> None:
        self.cfg = cfg
        self.state = state

    def answer(self, ask: RecAsk, found: Found, count: bool = True) -> RecAnswer:
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
                index = index_of(state.overall.top, product)
                popular_rank = index if index < rec.EVAL_DEPTH else None
            if ask.kind != "remove":
                ranking = self._count(product, ask.category, ask.ts_ms)
            elif ask.category is not None:
                ranking = state.categories.get(ask.category)
        popular = ranking_top(state.overall)
        in_category = ranking_top(ranking) if ranking is not None else ()
        return _new(_ANSWER, (ask, found, popular, in_category, popular_rank))

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
        # get and del rather than pop(product, 0.0): compiled, pop is a generic method call
        # and its default a float boxed at every call (0.0 + x is x: the same score).
        added = math.pow(2.0, exponent)
        old = counts.get(product)
        if old is None:
            score = added
        else:
            score = old + added
            del counts[product]
        # Boxed once (compiled, a float is native): the counts and both rankings share the object.
        held: Any = score
        if len(counts) >= cfg.max_products:
            forgotten = next(iter(counts))
            del counts[forgotten]
            _drop(state.overall, forgotten)
            for ranking in state.categories.values():
                _drop(ranking, forgotten)
        counts[product] = held  # re-inserted last: least recently seen first
        ranking_add(state.overall, product, score, cfg.popular, held)
        if category is None:
            return None
        categories = state.categories
        kept = categories.get(category)
        if kept is None:
            kept = Ranking([], {})
            if len(categories) >= cfg.max_categories:
                del categories[next(iter(categories))]
        else:
            del categories[category]
        categories[category] = kept
        ranking_add(kept, product, score, cfg.popular, held)
        return kept

    def _rebase(self, ts_ms: int) -> None:
        state = self.state
        factor = math.pow(2.0, -(ts_ms - state.origin_ms) / self.cfg.popularity_half_life_ms)  # type: ignore[operator]
        state.origin_ms = ts_ms
        state.counts = {p: s * factor for p, s in state.counts.items()}
        for ranking in (state.overall, *state.categories.values()):
            ranking.scores = {p: s * factor for p, s in ranking.scores.items()}
            ranking.places = None  # made again from the new scores at the next count


def _drop(ranking: Ranking, product: str) -> None:
    if product in ranking.scores:
        del ranking.scores[product]
        ranking.top.remove(product)
        ranking.view = None
        ranking.places = None  # made again at the next count (products seldom drop out)


@dataclass(slots=True)
class CatalogState:
    """Every product's successors and the popularity counts."""

    version: int = 1
    table: dict[str, list[Any]] = field(default_factory=dict)
    """Product -> ``[successor weights, total, cached answer, best order, what of the answer
    still holds, the best's weights]`` (see
    :func:`~operators.recommend_successors.learn`), least recently learned first."""
    popularity: PopularityState = field(default_factory=PopularityState)


class CatalogLogic(StatefulBatchLogic[list[RecAsk], list[RecAnswer], bytes]):
    """Learn, find successors, count popularity and answer, per ask in arrival order.

    Takes a batch's asks as one item and emits one list of answers per
    customer, in event order: see the module docstring.
    """

    def __init__(self, cfg: RecommendConfig, state: CatalogState) -> None:
        self.cfg = cfg
        self.state = state
        self.popularity = Popularity(cfg, state.popularity)

    def on_batch(self, values: list[list[RecAsk]]) -> tuple[Iterable[list[RecAnswer]], bool]:
        asks = values[0] if len(values) == 1 else [ask for group in values for ask in group]
        return list(self.answers(asks).values()), _RETAIN

    def answers(self, asks: list[RecAsk], *, count: bool = True) -> dict[str, list[RecAnswer]]:
        """Return each customer's answers to ``asks`` (in order); learn and count each ask first
        (unless not ``count``: then nothing is learned or counted)."""
        table = self.state.table
        cfg = self.cfg
        # Called on the attribute, not through a bound method kept in a local: compiled, the
        # call is then native (a bound method is made, and called generically, through its
        # argument-parsing wrapper: about 600 instructions an ask).
        popularity = self.popularity
        by_user: dict[str, list[RecAnswer]] = {}
        for ask in asks:
            product = ask.product
            found = NOTHING_FOUND
            if product is not None:
                if count:
                    distance = 1
                    for source in ask.previous:
                        learn(table, cfg, source, product, 1.0 / distance)
                        distance += 1
                found = successors(table, product)
            made = popularity.answer(ask, found, count)
            listed = by_user.get(ask.user)
            if listed is None:
                by_user[ask.user] = [made]
            else:
                listed.append(made)
        return by_user

    def on_item(self, value: list[RecAsk]) -> tuple[Iterable[list[RecAnswer]], bool]:
        """Handle one batch of asks outside a dataflow."""
        return self.on_batch([value])

    def snapshot(self) -> bytes:
        return encode_state(self.state)


def build_catalog(cfg: RecommendConfig) -> Any:
    """Return the catalog step's builder."""
    return lambda resume: CatalogLogic(cfg, CatalogState() if resume is None else _resumed(resume))


def _resumed(data: bytes) -> CatalogState:
    state = decode_state(data, CatalogState)
    forget_answers(state.table)  # made again when first asked (older snapshots hold older forms)
    return state


class Chain:
    """The steps chained in one process, event by event, as the dataflow chains them.

    The offline evaluation, the benchmark and the tests drive the real
    logic through this one definition. ``recent`` plays the journey step's
    part (each customer's last products).
    """

    def __init__(self, cfg: RecommendConfig) -> None:
        self.cfg = cfg
        self.catalog = CatalogLogic(cfg, CatalogState())
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
        out: list[Any] = []
        for user, answers in self.catalog.answers(asks, count=learn).items():
            out.extend(self.logic(user).on_batch([answers])[0])
        return out

    def logic(self, user: str) -> ListLogic:
        """Return the lists step's logic of ``user`` (a new one if none)."""
        logic = self.lists.get(user)
        if logic is None:
            logic = self.lists[user] = ListLogic(self.cfg, ListState())
        return logic
