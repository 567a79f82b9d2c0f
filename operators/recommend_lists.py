"""The recommender's per-customer step: blend answers into a list; publish it.

See :mod:`operators.recommend` for the algorithm and
:mod:`operators.recommend_steps` for the product side. Guarantees:

* Ordering: the product step answers a batch shard by shard, so this step
  puts the answers of one customer's batch back in time order. It receives
  answers and the audience step's records over two paths: a segment change
  shows the list as of the answers that arrived before it; a replay's final
  profile row waits for the end of the input, so it has the last list.
* Consent and erasure: only consenting customers' events are asked about
  (the journey step filters), so an opted-out customer gets no list. A
  tombstone (``forget`` or a refusal) drops the customer's list; answers to
  events before it that are still on their way are ignored (the state
  keeps the tombstone's time until a later answer).
* Memory: a customer keeps at most ``2 * candidates`` scored products, what
  to leave out and the popular fill; the state is discarded with the list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.operators import StatefulBatchLogic

from journeyflow.records import ProfileRow, SegmentChange, Tombstone, Trigger
from operators import recommend as rec
from operators.recommend import RecAnswer, RecommendConfig, RecQuality
from operators.recommend_scores import blend, rank
from operators.rules import evaluate_safely
from operators.variables import RECOMMENDATIONS
from state.serde import decode_state, encode_state

__all__ = ["ListState", "ListLogic", "build_lists"]

def _answer_ms(answer: RecAnswer) -> int:
    return answer.ask.ts_ms


_NO_HITS = {"hit_10": 0.0, "rr_10": 0.0, "hit_20": 0.0, "rr_20": 0.0}


@dataclass(slots=True)
class ListState:
    """One customer's candidate scores and list."""

    version: int = 3
    scores: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    """Weight of the latest product's successors in ``scores`` (forward decay, see :func:`operators.recommend_scores.blend`)."""
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
            ranked = self._ranked = rank(state.scores, state.exclude, state.fill)
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
            state.scores, state.scale = blend(state.scores, state.scale, cfg, answer.successors, fresh)
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



def build_lists(cfg: RecommendConfig) -> Any:
    """Return the lists step's builder."""
    return lambda resume: ListLogic(cfg, ListState() if resume is None else decode_state(resume, ListState))


