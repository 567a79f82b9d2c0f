"""The recommender's three steps: popularity (global), products (by shard), lists (by user).

See :mod:`operators.recommend` for the algorithm. Guarantees:

* Ordering: one customer's asks reach the popularity step, then each shard,
  in the order the journey step emitted them (one key, one worker each), so
  a product learns its successors in event order. The popularity and
  product steps take a whole batch at a time (``stateful_batch``): the
  popularity step sends each shard one item per batch, its work in event
  order, so a product answers with what it learned before the event. The
  product step answers shard by shard, so the lists step puts the answers
  of one customer's batch back in time order. It receives answers and the
  audience step's records over two paths: a segment change shows the list
  as of the answers that arrived before it; a replay's final profile row
  waits for the end of the input, so it has the last list.
* Consent and erasure: only consenting customers' events are asked about
  (the journey step filters), so an opted-out customer contributes nothing
  and gets no list. A tombstone (``forget`` or a refusal) drops the
  customer's list; answers to events before it that are still on their way
  are ignored (the state keeps the tombstone's time until a later answer).
  Product state holds product ids and weights only.
* Memory: popularity keeps at most ``max_products`` counts and
  ``max_categories`` category rankings (least recently seen forgotten);
  each shard keeps at most ``max_products / shards`` products with at most
  ``2 * neighbours`` successors each; a customer keeps at most
  ``2 * candidates`` scored products and the list. A customer's state is discarded with the list.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.operators import StatefulBatchLogic

from journeyflow.records import ProfileRow, SegmentChange, Tombstone, Trigger
from operators import recommend as rec
from operators.recommend import RecAnswer, RecAsk, RecommendConfig, RecQuality, Ranking, ShardWork
from operators.rules import evaluate_safely
from operators.variables import RECOMMENDATIONS
from state.serde import decode_state, encode_state

__all__ = [
    "PopularityState",
    "PopularityLogic",
    "ShardState",
    "ShardLogic",
    "ListState",
    "ListLogic",
    "build_popularity",
    "build_shard",
    "build_lists",
    "Chain",
]

#: Forward decay keeps scores comparable without touching old ones; rebase
#: them before 2**exponent gets near the float limit.
_REBASE_EXPONENT = 500.0


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

    def on_batch(self, values: list[RecAsk]) -> tuple[Iterable[tuple[str, list[ShardWork]]], bool]:
        by_shard: dict[str, list[ShardWork]] = {}
        for ask in values:
            self.work(ask, by_shard)
        return list(by_shard.items()), StatefulBatchLogic.RETAIN

    def on_item(self, value: RecAsk) -> tuple[Iterable[ShardWork], bool]:
        """Handle one ask outside a dataflow: return its shard work, in order."""
        by_shard: dict[str, list[ShardWork]] = {}
        self.work(value, by_shard)
        return [work for works in by_shard.values() for work in works], StatefulBatchLogic.RETAIN

    def work(self, ask: RecAsk, by_shard: dict[str, list[ShardWork]], *, count: bool = True) -> None:
        """Add the shard work of ``ask`` to ``by_shard``, counting its product first (unless not
        ``count``: then nothing is counted or learned, the question is only asked)."""
        cfg = self.cfg
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
        popular = rec.ranking_top(state.overall)
        in_category = rec.ranking_top(ranking) if ranking is not None else ()
        if product is None:
            by_shard.setdefault("rec:0", []).append(ShardWork("rec:0", (), ask, popular, in_category, None))
            return
        shards = cfg.shards
        home = rec.shard_of(product, shards)
        own: list[tuple[str, str, float]] = []
        for distance, source in enumerate(ask.previous, start=1):
            shard = rec.shard_of(source, shards)
            pair = (source, product, 1.0 / distance)
            if shard == home:
                own.append(pair)
            else:
                by_shard.setdefault(shard, []).append(ShardWork(shard, (pair,)))
        by_shard.setdefault(home, []).append(ShardWork(home, tuple(own), ask, popular, in_category, popular_rank))

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
        rec.ranking_add(state.overall, product, score, cfg.popular)
        if category is None:
            return None
        ranking = state.categories.pop(category, None)
        if ranking is None:
            ranking = Ranking([], {})
            if len(state.categories) >= cfg.max_categories:
                del state.categories[next(iter(state.categories))]
        state.categories[category] = ranking
        rec.ranking_add(ranking, product, score, cfg.popular)
        return ranking

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
        for works in values:
            for work in works:
                answer = self.work(work)
                if answer is not None:
                    out.append(answer)
        return out, StatefulBatchLogic.RETAIN

    def on_item(self, value: ShardWork) -> tuple[Iterable[RecAnswer], bool]:
        """Handle one event's work outside a dataflow."""
        return self.on_batch([[value]])

    def work(self, work: ShardWork) -> RecAnswer | None:
        """Learn ``work``'s pairs; return the answer to its ask, if it has one."""
        table = self.state.table
        cfg = self.cfg
        for source, successor, weight in work.pairs:
            rec.learn(table, cfg, source, successor, weight)
        ask = work.ask
        if ask is None:
            return None
        found = rec.successors(table, cfg, ask.product) if ask.product is not None else ()
        return RecAnswer(ask, found, work.popular, work.in_category, work.popular_rank)

    def snapshot(self) -> bytes:
        return encode_state(self.state)


def _answer_ms(answer: RecAnswer) -> int:
    return answer.ask.ts_ms


_NO_HITS = {"hit_10": 0.0, "rr_10": 0.0, "hit_20": 0.0, "rr_20": 0.0}


@dataclass(slots=True)
class ListState:
    """One customer's candidate scores and list."""

    version: int = 3
    scores: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    """Weight of the latest product's successors in ``scores`` (forward decay, see :func:`rec.blend`)."""
    exclude: frozenset[str] = frozenset()
    """What the list leaves out as of the last answer: bought, in the cart, being looked at."""
    fill: tuple[tuple[str, ...], ...] = ()
    """The popular products (in the category, then overall) that fill the list up."""
    last_ms: int | None = None
    erased_ms: int | None = None
    """Time of the last tombstone: answers to earlier events are ignored."""
    final: ProfileRow | None = None
    """A replay's final profile row, held until the end of the input."""
    evaluated: int = 0
    hits: dict[str, dict[str, float]] = field(default_factory=dict)


class ListLogic(StatefulBatchLogic[Any, Any, bytes]):
    """Keep one customer's list; add it to their segment changes and profile rows."""

    def __init__(self, cfg: RecommendConfig, state: ListState) -> None:
        self.cfg = cfg
        self.state = state
        # Rules whose payload failed at run time (logged once each).
        self._failed: set[str] = set()
        # The list, ranked when first read after an answer (not in the state:
        # it is made from it). Most answers are never published, and most
        # views miss the list, which a look at the scores tells (_position).
        self._ranked: tuple[str, ...] | None = None

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        answers = [i for i, value in enumerate(values) if type(value) is RecAnswer]
        if len(answers) > 1:
            # The product step answers a batch shard by shard, so one customer's
            # answers can arrive out of time order: put them back in it (in the
            # places answers hold; the other records keep theirs).
            ordered = sorted((values[i] for i in answers), key=_answer_ms)
            values = list(values)
            for i, answer in zip(answers, ordered):
                values[i] = answer
        out: list[Any] = []
        for value in values:
            out.extend(self.on_item(value)[0])
        return out, self._retain()

    def on_item(self, value: Any) -> tuple[Iterable[Any], bool]:
        """Handle one record (a batch of one, or each of a batch in turn)."""
        state = self.state
        if type(value) is RecAnswer:
            return self.answer(value), self._retain()
        if isinstance(value, Trigger) and value.rule in self.cfg.payloads:
            values = {RECOMMENDATIONS: self.published}
            filled = {
                key: evaluate_safely(value.rule, expression, values, self._failed)
                for key, expression in self.cfg.payloads[value.rule]
            }
            return [dataclasses.replace(value, payload={**value.payload, **filled})], self._retain()
        if isinstance(value, SegmentChange):
            profile = {**value.profile, "recommendations": self.published}
            fields = value.fields + ("recommendations",)
            return [dataclasses.replace(value, profile=profile, fields=fields)], self._retain()
        if isinstance(value, ProfileRow) and value.final:
            state.final = value
            return [], StatefulBatchLogic.RETAIN
        if isinstance(value, Tombstone):
            quality = self._quality()
            self.state = ListState(erased_ms=value.ts_ms)
            self._ranked = None
            return [value, *quality], StatefulBatchLogic.RETAIN
        return [value], self._retain()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        state = self.state
        out: list[Any] = self._quality()
        if state.final is not None:
            row = state.final
            out.append(dataclasses.replace(row, fields={**row.fields, "recommendations": self.published}))
            state.final = None
        state.erased_ms = None
        return out, self._retain()

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    @property
    def ranked(self) -> tuple[str, ...]:
        """Return the customer's list ``EVAL_DEPTH`` deep, best first."""
        ranked = self._ranked
        if ranked is None:
            state = self.state
            ranked = self._ranked = rec.rank(state.scores, state.exclude, state.fill)
        return ranked

    @property
    def published(self) -> list[str]:
        """Return the customer's list as published: ``size`` products, best first."""
        return list(self.ranked[: self.cfg.size])

    def _has_list(self) -> bool:
        """Return whether the list holds anything (without ranking it)."""
        if self._ranked is not None:
            return bool(self._ranked)
        exclude = self.state.exclude
        for product in self.state.scores:
            if product not in exclude:
                return True
        return any(p not in exclude for products in self.state.fill for p in products)

    def _position(self, product: str) -> int | None:
        """Return ``product``'s 1-based position in the list, or None (ranking only when it may be in it)."""
        state = self.state
        if self._ranked is None and product not in state.scores:
            exclude = state.exclude
            scored = len(state.scores) - sum(1 for p in exclude if p in state.scores)
            if scored >= rec.EVAL_DEPTH:
                return None  # the list is full of scored products, and this is not one
        return rec.position_of(self.ranked, product)

    def answer(self, answer: RecAnswer) -> list[Any]:
        """Blend ``answer`` into the list; return the store row if the list changed."""
        state = self.state
        cfg = self.cfg
        ask = answer.ask
        if state.erased_ms is not None:
            if ask.ts_ms <= state.erased_ms:
                return []
            state.erased_ms = None
        if ask.kind == "view" and ask.product is not None and self._has_list():
            self._score(ask.product, answer.popular_rank)
        # Live, the store gets a row when the list changes (ranked before blend changes the scores).
        before = self.published if cfg.store_rows else None
        fresh = state.last_ms is None or ask.ts_ms - state.last_ms > cfg.session_gap_ms
        if ask.kind == "view" or ask.kind == "cart" and answer.successors:
            state.scores, state.scale = rec.blend(state.scores, state.scale, cfg, answer.successors, fresh)
        state.last_ms = ask.ts_ms if state.last_ms is None else max(state.last_ms, ask.ts_ms)
        state.exclude = frozenset(ask.exclude if ask.product is None else (*ask.exclude, ask.product))
        state.fill = (answer.in_category, answer.popular)
        self._ranked = None
        if before is not None and self.published != before:
            return [ProfileRow(ask.user, ask.ts_ms, {"recommendations": self.published})]
        return []

    def _score(self, product: str, popular_rank: int | None) -> None:
        state = self.state
        state.evaluated += 1
        popular = None if popular_rank is None else popular_rank + 1
        for name, position in (("online", self._position(product)), ("popularity", popular)):
            if position is None:
                continue  # a miss adds nothing: most views, so skip the sums
            sums = state.hits.setdefault(name, dict(_NO_HITS))
            for key, value in rec.hit_figures(position).items():
                sums[key] += value

    def _quality(self) -> list[RecQuality]:
        state = self.state
        if not state.evaluated:
            return []
        out = [RecQuality(state.evaluated, state.hits)]
        state.evaluated = 0
        state.hits = {}
        return out

    def _retain(self) -> bool:
        state = self.state
        if state.final is not None or state.erased_ms is not None or state.evaluated or state.scores or self._has_list():
            return StatefulBatchLogic.RETAIN
        return StatefulBatchLogic.DISCARD


def build_popularity(cfg: RecommendConfig) -> Any:
    """Return the popularity step's builder."""
    return lambda resume: PopularityLogic(cfg, PopularityState() if resume is None else decode_state(resume, PopularityState))


def build_shard(cfg: RecommendConfig) -> Any:
    """Return the product step's builder."""
    return lambda resume: ShardLogic(cfg, ShardState() if resume is None else decode_state(resume, ShardState))


def build_lists(cfg: RecommendConfig) -> Any:
    """Return the lists step's builder."""
    return lambda resume: ListLogic(cfg, ListState() if resume is None else decode_state(resume, ListState))


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
