"""The models step in a replay cluster: compact asks in, scores out, joined to the update that stayed home.

In one process an update goes to the models step whole and comes back with
its scores. In a cluster the models step lives on one worker, so every
update of the other process's users crossed to it and back, pickled by
bytewax twice each way (timely measures a message's length, then writes it):
the values, segments and profile the models never read went both ways.
Here instead:

* each worker sends the models step one item per batch, a list of
  :class:`ModelAsk` (what :meth:`operators.models.ModelLogic.learn_and_score`
  reads: the examples, packed feature rows, cluster vector), and only for
  updates that bring the models something (:func:`asks_of`); the list is
  wrapped in a :class:`~operators.pickled_once.PickledOnce`, so that when it
  crosses to the other process bytewax pickles it once instead of twice;
* the models step (:class:`BatchedModels`) answers each ask that wants
  scores with a :class:`Scored`, paired with the key the update was emitted
  under; a batch's answers go back together (:class:`Answers`, pickled once)
  to the worker that sent the batch, keyed by one of that batch's own keys
  (``reply_to``), and are handed out there (:class:`Home`) by the update's
  key, which lives on that same worker: one item crosses per batch, not one
  per answer;
* :class:`AwaitScores`, keyed the same way, holds each update that waits for
  its scores and lets the updates through in the order they were emitted.

Matching is first-in first-out per key: a key's updates come from one
worker, in one order, along both paths, and the models answer a key's asks
in the order they arrive. The models learn and score exactly as they do
from whole updates (the same method, the same arguments).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bytewax.operators import StatefulBatchLogic, StatefulLogic

from journeyflow.step_records import UserUpdate
from operators.models import FORGETTING_KINDS, ModelLogic
from operators.pickled_once import PickledOnce

__all__ = ["ModelAsk", "AskBatch", "Scored", "Answers", "asks_of", "wants_scores", "BatchedModels", "Home", "AwaitScores"]

class ModelAsk(NamedTuple):
    """What the models step reads of one update, and the key its answer goes back to."""

    key: str
    user_id: str
    kind: str
    ts_ms: int
    examples: tuple[Any, ...]
    features: bytes | None
    cluster_features: dict[str, float] | None
    learn_cluster: bool


class AskBatch(NamedTuple):
    """One worker's asks of one batch, and a key of that worker's the answers go back under."""

    reply_to: str
    asks: list[ModelAsk]


class Scored(NamedTuple):
    """The models' answer to one ask: the scores of the update it came from."""

    scores: dict[str, Any] | None


class Answers(NamedTuple):
    """The answers to one :class:`AskBatch`, as ``(update's key, Scored)`` in the asks' order."""

    reply_to: str
    scored: PickledOnce[list[tuple[str, Scored]]]


def wants_scores(update: UserUpdate) -> bool:
    """Return whether the models answer ``update`` with scores (it carries model inputs)."""
    return update.features is not None or update.cluster_features is not None


def asks_of(items: list[tuple[str, UserUpdate]]) -> list[ModelAsk]:
    """Return the asks of a batch of keyed updates: those that bring the models something.

    An update with no examples, no inputs and nothing to forget would only
    come back as it went: it does not go.
    """
    return [
        ModelAsk(key, u.user_id, u.kind, u.ts_ms, u.examples, u.features, u.cluster_features, u.learn_cluster)
        for key, u in items
        if u.examples or u.features is not None or u.cluster_features is not None or u.kind in FORGETTING_KINDS
    ]


class BatchedModels(StatefulLogic[PickledOnce[AskBatch], Any, bytes]):
    """The models step fed a batch of asks at a time; emits one :class:`Answers` per batch and the report."""

    def __init__(self, inner: ModelLogic) -> None:
        self.inner = inner

    def on_item(self, value: PickledOnce[AskBatch]) -> tuple[Iterable[Any], bool]:
        learn_and_score = self.inner.learn_and_score
        out: list[tuple[str, Scored]] = []
        batch = value.value
        for ask in batch.asks:
            scores = learn_and_score(
                ask.user_id, ask.kind, ask.ts_ms, ask.examples, ask.features, ask.cluster_features, ask.learn_cluster
            )
            if scores is not None:  # None: the ask wanted no scores (no inputs), so no answer waits for it
                out.append((ask.key, Scored(scores)))
        return ([Answers(batch.reply_to, PickledOnce(out))] if out else []), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        return self.inner.on_eof()

    def snapshot(self) -> bytes:
        return self.inner.snapshot()


class Home(StatefulBatchLogic[Answers, tuple[str, Scored], None]):
    """Hand a batch's answers out on the worker that sent the asks (keyed by ``reply_to``); keeps nothing.

    Its only work is the exchange in front of it: the batch's answers cross
    as one item, and each answer's own key lives on this worker, so the join
    after it takes them without another crossing.
    """

    def on_batch(self, values: list[Answers]) -> tuple[Iterable[tuple[str, Scored]], bool]:
        return [pair for answers in values for pair in answers.scored.value], StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        # Only a replay cluster runs this step, and replays are never resumed.
        return None


@dataclass
class _Waiting:
    """One key's updates waiting for their scores, and answers that came first."""

    updates: deque[UserUpdate] = field(default_factory=deque)
    answers: deque[Scored] = field(default_factory=deque)


class AwaitScores(StatefulLogic[Any, UserUpdate, None]):
    """Join one key's updates to the models' answers, in emitted order; emits scored updates.

    An update that wants no scores passes at once unless an earlier one is
    still waiting (then it waits behind it). The state is dropped whenever
    nothing waits.
    """

    def __init__(self) -> None:
        self.waiting = _Waiting()

    def on_item(self, value: Any) -> tuple[Iterable[UserUpdate], bool]:
        waiting = self.waiting
        if type(value) is Scored:
            waiting.answers.append(value)
        else:
            if not waiting.updates and not wants_scores(value):
                return [value], not waiting.answers
            waiting.updates.append(value)
        out: list[UserUpdate] = []
        updates, answers = waiting.updates, waiting.answers
        while updates:
            head = updates[0]
            if wants_scores(head):
                if not answers:
                    break
                head.scores = answers.popleft().scores
            out.append(updates.popleft())
        return out, not updates and not answers

    def snapshot(self) -> None:
        # Only a replay cluster runs this step, and replays are never resumed.
        return None
