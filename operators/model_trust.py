"""Shrink to what works: the churn score's weights of the learned chain, the prior and the silence floor.

Progressive validation: every churn example is scored by each candidate
before it is learned (the learned model and the prior in
:meth:`operators.weekly.Task.learn`, the silence floor here, before the life
table counts it), and their log-losses, decayed over about the latest
``LOSS_MEMORY`` examples and taken as each grid interval starts
(:func:`freeze_losses`), weigh them in the published score (a Bayesian
average with forgetting). The floor is the churn task's naive baseline made
a probability (recency alone, read from the life table of silences), so a
learned model that does worse than recency on recent examples hands the
score to it, as one that does worse than the prior hands it to the prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from operators.combiner import Combiner
from operators.grid_moments import GridMoments
from operators.odds import log_loss, shares
from operators.silence import SilenceCurve
from operators.weekly import LOSS_MEMORY, MIXES

if TYPE_CHECKING:
    from operators.models import ModelState
    from operators.weekly import Task

__all__ = ["ChurnWeights", "LOSS_DECAY", "MIXED_TASKS", "floor_chance", "judge_floor", "judge_floor_mixtures", "freeze_losses", "churn_shares", "upgrade"]

#: The churn blend's weights: the learned chain's, the prior's, the floor's, each floor mixture's chain's.
ChurnWeights = tuple[float, float, float, tuple[float, ...]]

#: The decay of the judged log-losses: the weekly tasks' own.
LOSS_DECAY = 1.0 - 1.0 / LOSS_MEMORY

#: The tasks whose blend weighs the mixtures of the learned model and the prior
#: (:meth:`operators.weekly.Task.shares`); the others' mixtures are not judged.
#: Churn's are not candidates: the weekly judge favoured them where the 30 days
#: punish them (eleventh follow-up in docs/models-history.md).
MIXED_TASKS = frozenset({"propensity"})


def floor_chance(state: ModelState, v: dict[str, float], interval_days: float, ts_ms: int) -> float:
    """Return the silence floor's one-interval chance of no return for churn example ``v`` (a coin until the table has a curve)."""
    q = state.silence.p_silent(math.expm1(v["days_since_last_seen"]), interval_days, (1.0,), v["bg_age"], ts_ms)
    return 0.5 if q is None else q


def judge_floor(state: ModelState, v: dict[str, float], stayed_away: bool, interval_days: float, ts_ms: int) -> float:
    """Score a churn example by the silence floor's one-interval chance before the floor counts it (progressive validation); return the chance.

    The floor is the churn task's naive baseline in the form of a probability
    (recency alone, read from the life table): its decayed log-loss weighs it
    next to the learned model and the prior (:func:`churn_shares`). The chance
    waits with its example in the shuffle buffer: the mixtures of the learned
    model and the floor are judged when the example is learned
    (:func:`judge_floor_mixtures`).
    """
    q = floor_chance(state, v, interval_days, ts_ms)
    state.floor_loss = state.floor_loss * LOSS_DECAY + log_loss(q, stayed_away)
    return q


def judge_floor_mixtures(
    state: ModelState, p: float, q: float | None, stayed_away: bool, v: dict[str, float], interval_days: float, ts_ms: int
) -> None:
    """Count each mixture ``a * p + (1 - a) * q`` (:data:`MIXES`) of the learned model's chance ``p`` and the floor's ``q``
    of a churn example ``v`` being learned in its decayed log-loss (``q`` None: buffered before the floor's chance was
    kept, so the floor is asked now)."""
    if q is None:
        q = floor_chance(state, v, interval_days, ts_ms)
    mix = state.floor_mix_losses
    for i, a in enumerate(MIXES):
        mix[i] = mix[i] * LOSS_DECAY + log_loss(a * p + (1.0 - a) * q, stayed_away)


def freeze_losses(state: ModelState, interval: int) -> None:
    """Keep the judged losses as they are when grid interval ``interval`` starts: the churn blend weighs by them until the next.

    The weights are a judgement of the latest examples; examples resolve in
    bursts of one label (a moment's silences at once, a replay's stale ones at
    the end of input), and weights taken after every example flip within a
    burst, so that customers scored at the same moment got different blends.
    """
    if state.frozen is None or interval > state.frozen[0]:
        task = state.tasks["churn"]
        state.frozen = (interval, task.loss, task.prior_loss, state.floor_loss, *state.floor_mix_losses)


def churn_shares(
    task: Task,
    floor_loss: float,
    min_examples: int,
    floor_known: bool,
    frozen: tuple[float, ...] | None = None,
    mix_losses: Sequence[float] = (),
) -> ChurnWeights:
    """Return the churn score's weights of the learned chain, the prior, the silence floor and the chains of each mixture
    of the learned model and the floor (:data:`MIXES`).

    Shrink to what works: a Bayesian average of the candidates by their
    decayed log-losses on the latest examples, each scored before it was
    learned (the learned model and the mixtures not candidates before
    ``min_examples``; the floor and the mixtures not without a curve:
    ``floor_known``, which is ``state.silence.curve() is not None``, the same
    for every customer of a state). ``frozen``: the losses as the interval
    started (:func:`freeze_losses`); one kept before the mixtures were judged
    has none, and they have no weight until the next interval. The prior's
    weight is what the others leave, so with the floor's and the mixtures' at
    0 the blend is the two-model trust's.
    """
    learned_in = task.examples >= max(1, min_examples)
    loss, prior_loss, mixes = task.loss, task.prior_loss, tuple(mix_losses)
    if frozen is not None:
        _, loss, prior_loss, floor_loss, *frozen_mixes = frozen
        mixes = tuple(frozen_mixes)
    mixed_in = learned_in and floor_known
    weights = shares([loss if learned_in else None, prior_loss, floor_loss if floor_known else None, *(m if mixed_in else None for m in mixes)])
    w_learned, w_floor, w_mixed = weights[0], weights[2], tuple(weights[3:]) or (0.0,) * len(MIXES)
    # Not below 0: with the others' weights near 1 the difference may round to -1e-21.
    return w_learned, max(0.0, 1.0 - w_learned - w_floor - sum(w_mixed)), w_floor, w_mixed


def upgrade(state: ModelState) -> None:
    """Give a state exported before the silence curve, its young rows, the stacks, the floor's judge, the weights kept per
    interval or the mixtures were judged what it lacks.

    A candidate new to a state starts as the worse of the two judged so far
    (it earns its weight); the weights kept for an interval are taken at the
    next update when there are none. A task outside :data:`MIXED_TASKS` drops
    the mixtures' losses a state of the eleventh follow-up judged (no score
    read them).
    """
    if not hasattr(state, "silence"):  # exported before the silence curve existed: it counts from now on
        state.silence = SilenceCurve()
    elif not hasattr(state.silence, "start_ms"):  # before the young rows: the all-ages counts go on, the rows start
        state.silence = SilenceCurve(examples=state.silence.examples, stayed=state.silence.stayed)
    if not hasattr(state, "combiner"):  # exported before the stacks existed: they follow customers from now on
        state.combiner, state.moments = Combiner(), GridMoments()
    if "floor_loss" not in vars(state):
        state.floor_loss = max(state.tasks["churn"].loss, state.tasks["churn"].prior_loss)
    if "floor_mix_losses" not in vars(state):
        state.floor_mix_losses = [max(state.tasks["churn"].loss, state.floor_loss)] * len(MIXES)
    vars(state).setdefault("frozen", None)
    for name, task in state.tasks.items():
        if name not in MIXED_TASKS:
            task.mix_losses = []  # judged before this version though nothing weighed them: no longer
        elif "mix_losses" not in vars(task):
            task.mix_losses = [max(task.loss, task.prior_loss)] * len(MIXES)
