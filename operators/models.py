"""Online models: purchase propensity, churn risk and behavioural clusters (README "Models").

One global keyed step (key ``models``) between the per-user journey step and
the audience step: a model that learns from everyone needs every user's
examples in one place, and only the updates that matter reach it. Its state
is snapshotted with bytewax recovery (a restart resumes to the same scores);
a replay exports it (``models.bin``) and ``[models] warm_start`` starts from it.

What is learned (examples: :mod:`operators.labels`): per task, the chance of
the outcome within one interval (a week) from a snapshot of any known
customer, by a logistic regression (River, AdaGrad; :mod:`operators.weekly`)
over the profile's features and the prior's one-interval chances. Examples
wait in a shuffle buffer: they resolve in bursts, and online learning fed one
label at a time drifts with it. From a week to the horizon
(:mod:`operators.model_scoring`): ``churn_risk`` chains the weeks along the
silent path (a discrete-time survival model), never below the life table of
silences (:mod:`operators.silence`); ``purchase_propensity`` carries the
learned odds of a purchase next week, relative to the prior's, over to the
prior's horizon odds, and is never above ``1 - churn_risk``.

The prior: two BG/NBD models (:mod:`operators.bgnbd`), over sessions and over purchases, re-fitted
from a sample of customers; the published scores until the learned model has ``min_examples`` examples.
Shrink to what works (:mod:`operators.model_trust`): each example is scored by the learned model, the
prior, (propensity) their mixtures and (churn) the silence floor before it is learned; their decayed
log-losses weigh them in the published score (churn's as each grid interval starts).
``stack``: a stack fitted to the horizon's question (:mod:`operators.model_stack`).
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bytewax.operators import StatefulLogic
from river import preprocessing

from journeyflow.errors import ConfigError
from journeyflow.metrics import MODEL_AUC
from journeyflow.records import ModelReport
from journeyflow.step_records import UserUpdate
from operators.batch_scoring import scores_of_run, warmed_up
from operators.bgnbd import OnlinePrior
from operators.clusters import Clusters
from operators.combiner import Combiner
from operators.features import unpack
from operators.grid_moments import GridMoments
from operators.model_report import models_report, trust_now
from operators.model_scoring import DAY_MS as _DAY_MS
from operators.model_scoring import TASKS, Scorer, learn_input
from operators.model_trust import MIXED_TASKS, freeze_losses, judge_floor, upgrade
from operators.model_stack import record_moment, resolve_moments
from operators.silence import SilenceCurve
from operators.weekly import Task
from state.serde import decode_state, encode_state

__all__ = ["ModelConfig", "Task", "ModelState", "ModelLogic", "TASKS", "FORGETTING_KINDS", "load_models"]

#: Examples wait in a shuffle buffer of this size before they are learned: they resolve
#: in bursts (every silent user's at once when time passes), and SGD drifts with one.
_SHUFFLE = 1000

#: Update kinds after which the models forget the customer (the priors' sample, the followed moments).
FORGETTING_KINDS: Final = frozenset({"erase", "opt_out", "merge"})


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters (passed to River unchanged), horizons, and where to warm-start from."""

    learning_rates: dict[str, float]
    """Task name -> SGD learning rate."""
    clusters: int
    cluster_halflife: float
    seed: int
    min_examples: int = 0
    """The learned model has no say in a score until it has learned from this many examples."""
    interval_ms: int = 7 * _DAY_MS
    """The window of each example's label (see :mod:`operators.labels`)."""
    horizons_ms: dict[str, int] = field(default_factory=lambda: {"propensity": 30 * _DAY_MS, "churn": 30 * _DAY_MS})
    """Task name -> the horizon its published score looks ahead."""
    warm_start: ModelState | None = None
    """Models to start from when there is no snapshot (see :func:`load_models`)."""
    stack: bool = False
    """Publish each task's stack (:mod:`operators.combiner`), learned from the followed customers' grid moments."""
    min_resolved: int = 1000
    """Resolved grid moments a task's stack needs before it publishes."""
    engagement_half_life_ms: int = 7 * _DAY_MS
    """The profiles' engagement half-life: how a snapshot's engagement decays along a silence."""

    def new_state(self) -> ModelState:
        """Return untrained models."""
        return ModelState(
            scaler=preprocessing.StandardScaler(),
            tasks={name: Task.new(self.learning_rates[name], mixtures=name in MIXED_TASKS) for name in TASKS},
            clusters=Clusters(k=self.clusters, halflife=self.cluster_halflife, seed=self.seed),
            priors={"sessions": OnlinePrior(), "purchases": OnlinePrior()},
            rng=random.Random(self.seed),
        )

    def build(self, resume_state: bytes | None) -> ModelLogic:
        """Return the logic, resumed from a snapshot, warm-started, or new."""
        if resume_state is not None:
            state = decode_state(resume_state, ModelState)
        elif self.warm_start is not None:
            # A copy: the configuration stays as loaded if the flow is built again.
            state = decode_state(encode_state(self.warm_start), ModelState)
        else:
            state = self.new_state()
        upgrade(state)  # what a state exported before the silence curve, the stacks or the blends' candidates lacks
        return ModelLogic(state, self)


@dataclass
class ModelState:
    """Everything the models step keeps (pickled into snapshots and exports)."""

    scaler: preprocessing.StandardScaler
    tasks: dict[str, Task]
    clusters: Clusters
    priors: dict[str, OnlinePrior]
    """BG/NBD over ``sessions`` (churn) and over ``purchases`` (propensity)."""
    rng: random.Random
    """Draws from the shuffle buffer (seeded: a replay stays deterministic)."""
    buffer: list[tuple[str, bytes, bool, int]] = field(default_factory=list)
    """One-interval examples waiting to be learned: (task, features, label, ts_ms)."""
    silence: SilenceCurve = field(default_factory=SilenceCurve)
    """The chance of no return by weeks already silent: the floor of ``churn_risk``."""
    combiner: Combiner = field(default_factory=Combiner)
    """Per task, the stack fitted to the horizon's question (:mod:`operators.combiner`)."""
    moments: GridMoments = field(default_factory=GridMoments)
    """The followed customers' grid moments waiting for their horizon: the stacks' examples."""
    floor_loss: float = 0.0
    """Decayed log-loss of the silence floor's one-interval chance on churn examples before they are counted."""
    frozen: tuple[int, float, float, float] | None = None
    """(grid interval, the three judged losses as it started): what the churn blend weighs by."""
    version: int = 4
    scored: int = 0

    @property
    def model_version(self) -> str:
        """Return a label that changes whenever the models learn."""
        # (A loop, not sum() over a generator: every scored update reads it.)
        learned = self.clusters.learned
        for task in self.tasks.values():
            learned += task.examples
        return f"m{learned}"


class ModelLogic(StatefulLogic[UserUpdate, Any, bytes]):
    """Learn from labelled examples and score users; one instance for everyone."""

    def __init__(self, state: ModelState, cfg: ModelConfig) -> None:
        self.state = state
        self.cfg = cfg
        self.min_examples = cfg.min_examples
        # Derived, never pickled: the scoring path and what it reads from the configuration.
        self.scorer = Scorer(cfg)
        # Grid moments within a horizon of the stream's first customer are not
        # recorded for the stacks: every customer's history there is cut short by
        # the stream's start (left-censored), so their recency and frequency, and
        # the young models' scores, do not say what they say later on.
        self._censored_ms = max(cfg.horizons_ms.values())
        self.stack = cfg.stack

    def on_batch(self, values: list[UserUpdate]) -> tuple[Iterable[Any], bool]:
        """Handle ``values`` in order, as :meth:`on_item` one by one would: the same records, the same state.

        An update that carries no example (and is no erasure, opt-out or merge,
        nor the first of a new grid interval) changes nothing a score reads, so every score of a run of such updates
        comes from the same state: the run's scores are taken together
        (:mod:`operators.batch_scoring`: the same floats, a fraction of the
        time), then each update goes through :meth:`on_item` in its turn (the
        clusters learn in order). The end of input's final rows are one run.
        """
        out: list[Any] = []
        run: list[UserUpdate] = []
        for value in [*values, None]:
            if value is not None and not value.examples and value.kind not in FORGETTING_KINDS and self._same_weights(value.ts_ms):
                run.append(value)
                continue
            if run:
                # The run's scores as of now: after every update before it, before the next that teaches.
                ready = scores_of_run(self.scorer, self.state, run)
                out.extend([self._scored(update, ready.get(id(update))) for update in run])
                run = []
            if value is not None:
                out.append(self._scored(value, None))
        return out, StatefulLogic.RETAIN

    def _same_weights(self, ts_ms: int) -> bool:
        """Return whether an update at ``ts_ms`` is scored with the blend's weights as they are (no new interval starts)."""
        return self.state.frozen is not None and ts_ms // self.cfg.interval_ms <= self.state.frozen[0]

    def on_item(self, value: UserUpdate) -> tuple[Iterable[Any], bool]:
        return [self._scored(value, None)], StatefulLogic.RETAIN

    def _scored(self, value: UserUpdate, ready: dict[str, float] | None) -> UserUpdate:
        """``value`` with its scores, learned from and scored as :meth:`learn_and_score` does."""
        value.scores = self.learn_and_score(
            value.user_id, value.kind, value.ts_ms, value.examples, value.features, value.cluster_features,
            value.learn_cluster, ready,
        )
        return value

    def learn_and_score(
        self,
        user_id: str,
        kind: str,
        ts_ms: int,
        examples: tuple[Any, ...],
        features: bytes | None,
        cluster_features: dict[str, float] | None,
        learn_cluster: bool,
        ready: dict[str, float] | None = None,
    ) -> dict[str, Any] | None:
        """Learn from an update's examples; return its scores (``None``: it asked for none).

        ``ready``: the models' scores of ``features`` already taken as of this
        state (:meth:`on_batch`), so they are not taken again.

        What an update brings the models (see :class:`UserUpdate`), whichever
        record carried it here: a whole update (:meth:`on_item`) or a replay
        cluster's compact ask (:mod:`operators.model_batches`).
        """
        state = self.state
        freeze_losses(state, ts_ms // self.cfg.interval_ms)
        if kind in FORGETTING_KINDS:
            for prior in state.priors.values():
                prior.forget(user_id)
            state.moments.forget(user_id)
        for example in examples:
            if example.task == "churn":
                # One churn example per snapshot: each snapshot is observed once.
                v = unpack(example.features)
                age = v["bg_age"]
                state.priors["sessions"].observe(user_id, v["bg_sessions_x"], v["bg_sessions_tx"], age)
                state.priors["purchases"].observe(user_id, v["bg_purchases_x"], v["bg_purchases_tx"], age)
                judge_floor(state, v, example.label, self.scorer.interval_days, example.ts_ms)
                state.silence.learn(math.expm1(v["days_since_last_seen"]), self.scorer.interval_days, example.label, age, example.ts_ms)
                start_ms = state.silence.start_ms
                if self.stack and start_ms is not None and example.ts_ms - start_ms >= self._censored_ms and state.moments.follows(user_id):
                    record_moment(state, self.cfg, self.scorer, user_id, v, example.ts_ms)
            state.buffer.append((example.task, example.features, example.label, example.ts_ms))
            if len(state.buffer) > _SHUFFLE:
                self._learn_one()
        if features is None and cluster_features is None:
            return None
        scores: dict[str, Any] = {}
        if features is not None and warmed_up(state, self.min_examples):
            if self.stack and state.moments.is_followed(user_id):
                resolve_moments(state, self.cfg, user_id, features, ts_ms)
            scores.update(self.scorer.score(state, features, ts_ms) if ready is None else ready)
            state.scored += 1
        if cluster_features is not None:
            found = state.clusters.learn_predict(cluster_features, learn=learn_cluster)
            if found is not None:
                scores["cluster"] = found
        scores["model_version"] = state.model_version
        return scores

    def _learn_one(self) -> None:
        """Learn one example drawn at random from the shuffle buffer."""
        state = self.state
        buffer = state.buffer
        i = state.rng.randrange(len(buffer))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        name, packed, label, ts_ms = buffer.pop()
        x, quiet, no_buy = learn_input(state, unpack(packed), self.scorer.interval_days, learn=True)
        task = state.tasks[name]
        task.learn(name, x, label, ts_ms, quiet if name == "churn" else 1.0 - no_buy)
        if 0 < task.positives < task.examples:
            MODEL_AUC.labels(model=name).set(task.auc.get())

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        # The report's weights are those that scored the final rows; the exported state has
        # learned the shuffle buffer (a run warm-started from it goes on from everything learned).
        trust = trust_now(self.state, self.min_examples)
        while self.state.buffer:
            self._learn_one()
        return [models_report(self.state, self.min_examples, stack=self.stack, with_state=True, trust=trust)], StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def report(self, *, with_state: bool = False) -> ModelReport:
        """Return the models' quality figures, priors and clusters (and their state, to export)."""
        return models_report(self.state, self.min_examples, stack=self.stack, with_state=with_state)

def load_models(path: Path) -> ModelState:
    """Return the model state exported to ``path`` (``models.bin``)."""
    try:
        data = path.read_bytes()
    except OSError as ex:
        msg = f"models.warm_start {str(path)!r} cannot be read: {ex.strerror}"
        raise ConfigError(msg) from ex
    return decode_state(data, ModelState)
