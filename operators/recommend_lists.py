"""The recommender's per-customer step: blend answers into a list; publish it.

See :mod:`operators.recommend` for the algorithm and
:mod:`operators.recommend_steps` for the product side. Guarantees:

* Ordering: the popularity step sends a customer's answers of a batch as
  one list, in event order; answers of batches that arrive together are put
  back in time order here (:mod:`operators.recommend_order`). It receives
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
  Between sessions the scores rest packed (``ListLogic.rest``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Final

from bytewax.operators import StatefulBatchLogic

from journeyflow.records import ProfileRow, SegmentChange, Tombstone, Trigger
from operators.recommend import EVAL_DEPTH, RecAnswer, RecommendConfig, RecQuality
from operators.recommend_hits import ONLINE, POPULARITY, add_hits, hit_sums, list_position
from operators.recommend_list_state import ListState, current
from operators.recommend_order import answers_in_time_order, records_in_time_order
from operators.recommend_scores import blend, pack, rank, ranked_list, unpack
from operators.expressions import evaluate_safely
from operators.variables import RECOMMENDATIONS
from state.serde import decode_state, encode_state

# ListState is re-exported: snapshots written before it moved name it here (state.portable).
__all__ = ["ListState", "ListLogic", "build_lists", "current", "with_list"]


#: Bytewax's flags as C statics (Final): compiled, ``StatefulBatchLogic.RETAIN`` is a look-up
#: in the module's dict and an attribute read (about 300 instructions), at every batch.
_RETAIN: Final = StatefulBatchLogic.RETAIN
_DISCARD: Final = StatefulBatchLogic.DISCARD
# The records' classes (``journeyflow.records`` is not compiled) and the answers' named tuple
# (a Python class, also looked up by name) as statics: each record and answer reads them.
_SEGMENT_CHANGE: Final = SegmentChange
_TRIGGER: Final = Trigger
_PROFILE_ROW: Final = ProfileRow
_TOMBSTONE: Final = Tombstone
_ANSWER: Final = RecAnswer

#: The scores of a customer whose list is at rest (:meth:`ListLogic.rest`): shared, never
#: written (every reader and writer of the scores wakes them first: :meth:`ListLogic._awake`).
_AT_REST: Final[dict[str, float]] = {}

class ListLogic(StatefulBatchLogic[Any, Any, bytes]):
    """Keep one customer's list; add it to their segment changes and profile rows."""

    def __init__(self, cfg: RecommendConfig, state: ListState) -> None:
        self.cfg = cfg
        self.state = current(state)
        # Rules whose payload failed at run time (logged once each); made at the first
        # trigger that fills a payload (a set is 216 bytes, and most customers get none).
        self._failed: set[str] | None = None
        # The published list (the first ``size`` of the ranked), made when first read after
        # an answer (not in the state: it is made from it; most answers are never published)
        # and shared by the records published meanwhile (segment changes, the final row): none
        # of them changes it. The ranking it is cut from is not kept: most views miss the
        # list, which a look at the scores tells (_position).
        self._published: list[str] | None = None
        # The scores at rest (``rest``), packed; ``state.scores`` is then ``_AT_REST``. Not in
        # the state: a snapshot holds the dict, as before.
        self._rest_products: tuple[str, ...] = ()
        self._rest_scores: bytes | None = None

    def rest(self) -> None:
        """Pack the scores until next read (:func:`~operators.recommend_scores.pack`): answers
        read and write a dict; between sessions nothing does. Called at a session's close, a
        tick and the final update (a replay's last ticks reach every customer just before the
        end of input, its peak). Exact whenever called: readers wake the same dict first."""
        scores = self.state.scores
        if scores and scores is not _AT_REST:
            self._rest_products, self._rest_scores = pack(scores)
            self.state.scores = _AT_REST

    def _awake(self) -> None:
        """Unpack the scores at rest (see :meth:`rest`), if they are."""
        packed = self._rest_scores
        if packed is not None:
            self.state.scores = unpack(self._rest_products, packed)
            self._rest_products = ()
            self._rest_scores = None

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        if len(values) == 1 and type(values[0]) is list:
            # The common batch: one list of answers (one product event of the customer).
            return self._answers(values[0]), self._retain()
        # Each list of answers takes its place among the records, answers in time order.
        out: list[Any] = []
        for value in records_in_time_order(values):
            if type(value) is _ANSWER:
                row = self.answer(value)
                if row is not None:
                    out.append(row)
            else:
                out.extend(self._record(value))
        return out, self._retain()

    def _answers(self, answers: list[RecAnswer]) -> list[Any]:
        """Blend one list of answers (``on_batch``'s common case): the same as the general
        path, without the flat copy and the answers' places."""
        out: list[Any] = []
        for value in answers_in_time_order(answers):
            row = self.answer(value)
            if row is not None:
                out.append(row)
        return out

    def on_item(self, value: Any) -> tuple[Iterable[Any], bool]:
        """Handle one record outside a dataflow (a batch of one)."""
        return self.on_batch([value])

    def _record(self, value: Any) -> list[Any]:
        """Add the list to a record of the audience step (or hold a replay's final row)."""
        if type(value) is _SEGMENT_CHANGE:
            # The common record, looked for first (none of the kinds below).
            # A refusal's own record carries nothing personalised (its tombstone follows).
            return [with_list(value, [] if value.cause == "consent" else self.published)]
        if isinstance(value, _TRIGGER) and value.rule in self.cfg.payloads:
            values = {RECOMMENDATIONS: self.published}
            if self._failed is None:
                self._failed = set()
            filled = {
                key: evaluate_safely(value.rule, expression, values, self._failed)
                for key, expression in self.cfg.payloads[value.rule]
            }
            return [dataclasses.replace(value, payload={**value.payload, **filled})]
        if isinstance(value, _PROFILE_ROW) and value.final:
            self.state.final = value
            return []
        if isinstance(value, _TOMBSTONE):
            quality = self._quality()
            self.state = ListState(erased_ms=value.ts_ms)
            self._published = None
            self._rest_products = ()
            self._rest_scores = None
            return [value, *quality]
        return [value]

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        state = self.state
        out: list[Any] = self._quality()
        if state.final is not None:
            row = state.final
            # Into the held row's own fields (the audience step made them for this row alone):
            # the same keys in the same order as a copy with the list added, without the copy.
            row.fields["recommendations"] = self.published
            out.append(row)
            state.final = None
        state.erased_ms = None
        return out, self._retain()

    def snapshot(self) -> bytes:
        state = self.state
        if self._rest_scores is None:
            return encode_state(state)
        # The stored layout holds the dict: the scores at rest stay packed after the snapshot.
        state.scores = unpack(self._rest_products, self._rest_scores)
        try:
            return encode_state(state)
        finally:
            state.scores = _AT_REST

    @property
    def ranked(self) -> tuple[str, ...]:
        """Return the customer's list ``EVAL_DEPTH`` deep, best first."""
        self._awake()
        state = self.state
        return rank(state.scores, state.exclude, state.fill)

    @property
    def published(self) -> list[str]:
        """Return the customer's list as published: ``size`` products, best first (one list
        per ranking, shared: see ``_published``)."""
        published = self._published
        if published is None:
            # Ranked only as deep as published (the same products as the first ``size`` of
            # ``ranked``, which is EVAL_DEPTH deep).
            self._awake()
            state = self.state
            depth = min(self.cfg.size, EVAL_DEPTH)
            published = self._published = ranked_list(state.scores, state.exclude, state.fill, depth)
        return published

    def _has_list(self) -> bool:
        """Return whether the list holds anything (without ranking it)."""
        self._awake()
        exclude = self.state.exclude
        for product in self.state.scores:
            if product not in exclude:
                return True
        return any(p not in exclude for products in self.state.fill for p in products)

    def _position(self, product: str) -> int | None:
        """Return ``product``'s 1-based position in the list, or None (without ranking it:
        :func:`~operators.recommend_hits.list_position`)."""
        self._awake()
        state = self.state
        return list_position(state.scores, state.exclude, state.fill, product)

    def answer(self, answer: RecAnswer) -> ProfileRow | None:
        """Blend ``answer`` into the list; return the store row if the list changed (live), or None."""
        self._awake()
        state = self.state
        cfg = self.cfg
        ask = answer.ask
        if state.erased_ms is not None:
            if ask.ts_ms <= state.erased_ms:
                return None
            state.erased_ms = None
        kind = ask.kind
        product = ask.product
        if kind == "view" and product is not None and self._has_list():
            self._score(product, answer.popular_rank)
        # Live, the store gets a row when the list changes (ranked before blend changes the scores).
        before = self.published if cfg.store_rows else None
        last_ms = state.last_ms
        if kind == "view" or kind == "cart" and answer.successors.products:
            fresh = last_ms is None or ask.ts_ms - last_ms > cfg.session_gap_ms
            state.scores, state.scale = blend(state.scores, state.scale, cfg, answer.successors, fresh)
        state.last_ms = ask.ts_ms if last_ms is None or ask.ts_ms > last_ms else last_ms
        # A tuple concatenation (the empty tuple's is the other one) rather than (*a, b), which
        # builds a list first.
        state.exclude = ask.exclude if product is None else ask.exclude + (product,)
        state.fill = (answer.in_category, answer.popular)
        self._published = None
        if before is not None and self.published != before:
            return _PROFILE_ROW(ask.user, ask.ts_ms, {"recommendations": self.published})
        return None

    def _score(self, product: str, popular_rank: int | None) -> None:
        state = self.state
        state.evaluated += 1
        online = self._position(product)
        sums = add_hits(state.sums, ONLINE, online)
        state.sums = add_hits(sums, POPULARITY, None if popular_rank is None else popular_rank + 1)

    def _quality(self) -> list[RecQuality]:
        state = self.state
        if not state.evaluated:
            return []
        out = [RecQuality(state.evaluated, hit_sums(state.sums))]
        state.evaluated = 0
        state.sums = None
        return out

    def _retain(self) -> bool:
        state = self.state
        resting = self._rest_scores is not None  # (never empty: held without waking them)
        if state.final is not None or state.erased_ms is not None or state.evaluated or state.scores or resting or self._has_list():
            return _RETAIN
        return _DISCARD


def with_list(change: SegmentChange, published: list[str]) -> SegmentChange:
    """Return ``change`` with the customer's list in its profile: ``change`` itself, written.

    The audience step makes each change, and its profile dict, for this step alone (its
    triggers copy the dict; it keeps neither), and nothing reads the change before this step:
    the list goes into that dict (the same keys in the same order as a copy with the list
    added) and its name into the change's ``fields``, rather than into a copy of the change
    (nine attributes read and an interpreted ``__init__``: about 4,000 instructions a change).
    """
    change.profile["recommendations"] = published
    change.fields = change.fields + ("recommendations",)
    return change


def build_lists(cfg: RecommendConfig) -> Any:
    """Return the lists step's builder."""
    return lambda resume: ListLogic(cfg, ListState() if resume is None else decode_state(resume, ListState))
