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
from typing import TYPE_CHECKING

from operators.combiner import Combiner
from operators.grid_moments import GridMoments
from operators.odds import log_loss, shares
from operators.silence import SilenceCurve
from operators.weekly import LOSS_MEMORY, MIXES

if TYPE_CHECKING:
    from operators.models import ModelState
    from operators.weekly import Task

__all__ = ["LOSS_DECAY", "MIXED_TASKS", "judge_floor", "freeze_losses", "churn_shares", "upgrade"]

#: The decay of the judged log-losses: the weekly tasks' own.
LOSS_DECAY = 1.0 - 1.0 / LOSS_MEMORY

#: The tasks whose blend weighs the mixtures of the learned model and the prior
#: (:meth:`operators.weekly.Task.shares`); the others' mixtures are not judged.
#: Churn's are not candidates: the weekly judge favoured them where the 30 days
#: punish them (eleventh follow-up in docs/models-history.md).
MIXED_TASKS = frozenset({"propensity"})


def judge_floor(state: ModelState, v: dict[str, float], stayed_away: bool, interval_days: float, ts_ms: int) -> None:
    """Score a churn example by the silence floor's one-interval chance before the floor counts it (progressive validation).

    The floor is the churn task's naive baseline in the form of a probability
    (recency alone, read from the life table): its decayed log-loss weighs it
    next to the learned model and the prior (:func:`churn_shares`). A coin
    until the table has a curve.
    """
    q = state.silence.p_silent(math.expm1(v["days_since_last_seen"]), interval_days, (1.0,), v["bg_age"], ts_ms)
    state.floor_loss = state.floor_loss * LOSS_DECAY + log_loss(0.5 if q is None else q, stayed_away)


def freeze_losses(state: ModelState, interval: int) -> None:
    """Keep the three judged losses as they are when grid interval ``interval`` starts: the churn blend weighs by them until the next.

    The weights are a judgement of the latest examples; examples resolve in
    bursts of one label (a moment's silences at once, a replay's stale ones at
    the end of input), and weights taken after every example flip within a
    burst, so that customers scored at the same moment got different blends.
    """
    if state.frozen is None or interval > state.frozen[0]:
        task = state.tasks["churn"]
        state.frozen = (interval, task.loss, task.prior_loss, state.floor_loss)


def churn_shares(
    task: Task, floor_loss: float, min_examples: int, floor_known: bool, frozen: tuple[int, float, float, float] | None = None
) -> tuple[float, float, float]:
    """Return the churn score's weights of the learned chain, the prior and the silence floor.

    Shrink to what works: a Bayesian average of the three by their decayed
    log-losses on the latest examples, each scored before it was learned
    (the learned model not a candidate before ``min_examples``; the floor
    not one without a curve: ``floor_known``, which is
    ``state.silence.curve() is not None``, the same for every customer of a
    state). The prior's weight is what the other two leave, so with the
    floor's at 0 the blend is the two-model trust's.
    """
    learned_in = task.examples >= max(1, min_examples)
    loss, prior_loss = task.loss, task.prior_loss
    if frozen is not None:
        _, loss, prior_loss, floor_loss = frozen
    w_learned, _, w_floor = shares([loss if learned_in else None, prior_loss, floor_loss if floor_known else None])
    # Not below 0: with both others' weights near 1 the difference may round to -1e-21.
    return w_learned, max(0.0, 1.0 - w_learned - w_floor), w_floor


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
    vars(state).setdefault("frozen", None)
    for name, task in state.tasks.items():
        vars(task).setdefault("auc_history", [])  # exported before the AUC history: it starts now
        if name not in MIXED_TASKS:
            task.mix_losses = []  # judged before this version though nothing weighed them: no longer
        elif "mix_losses" not in vars(task):
            task.mix_losses = [max(task.loss, task.prior_loss)] * len(MIXES)
