"""The models step's part of the opt-in stacks (``[models] stack``): follow customers' grid moments.

:mod:`operators.models` calls these only with ``stack`` on. A followed
customer's grid moment is recorded with the inputs the stack reads, scored as
it would have been at its moment (:func:`record_moment`); when the customer is
next seen, what their rows say (days since the last visit, since the last
purchase) resolves the moments whose horizon has passed, and the stacks learn
from them (:func:`resolve_moments`, :mod:`operators.grid_moments`,
:mod:`operators.combiner`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from operators.features import CLASSIFIER_FEATURES, DAYS_SINCE_LAST_SEEN, LAYOUT, pack_rows, unpack_rows
from operators.model_scoring import DAY_MS, Scorer, stack_inputs
from operators.silent_path import silent_path

if TYPE_CHECKING:
    from operators.models import ModelConfig, ModelState

__all__ = ["record_moment", "resolve_moments"]

_DAYS_SINCE_PURCHASE = CLASSIFIER_FEATURES.index("days_since_last_purchase")
_HAS_PURCHASED = CLASSIFIER_FEATURES.index("has_purchased")


def record_moment(
    state: ModelState, cfg: ModelConfig, scorer: Scorer, user_id: str, v: dict[str, float], moment_ms: int
) -> None:
    """Keep a followed customer's grid moment, scored as it would have been at its moment (the stacks' inputs)."""
    steps = len(scorer.weights["churn"])
    path = silent_path(v, steps, scorer.interval_days, cfg.engagement_half_life_ms / DAY_MS)
    rows = unpack_rows(pack_rows(path))
    published, prior = scorer.raw(state, rows, moment_ms)
    state.moments.record(user_id, moment_ms, *stack_inputs(rows[0], published, prior))


def resolve_moments(state: ModelState, cfg: ModelConfig, user_id: str, packed: bytes, now_ms: int) -> None:
    """Learn what a followed customer's rows now say of their pending grid moments."""
    now = LAYOUT.unpack_from(packed)
    days_bought = math.expm1(now[_DAYS_SINCE_PURCHASE]) if now[_HAS_PURCHASED] else None
    state.moments.resolve(
        user_id, now_ms, math.expm1(now[DAYS_SINCE_LAST_SEEN]), days_bought, state.combiner, cfg.horizons_ms, cfg.interval_ms
    )
