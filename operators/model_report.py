"""The models step's report: quality figures per task, the priors, the silence curve,
the stacks and the clusters (``summary.json`` ``models``; with the state, ``models.bin``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journeyflow.records import ModelReport
from operators.model_scoring import TASKS
from operators.model_trust import churn_shares
from operators.silence import AGE_BANDS
from operators.weekly import MIXES
from state.serde import encode_state

if TYPE_CHECKING:
    from operators.models import ModelState

__all__ = ["models_report", "trust_now"]


def trust_now(state: ModelState, min_examples: int) -> dict[str, dict[str, Any]]:
    """Return each task's trust and ``shares`` (churn: the learned chain's, the prior's and the floor's; propensity: with the mixtures') as of this state: the weights of a score taken now.

    Shrink to what works (:mod:`operators.model_trust`). Taken at the end of
    input before the shuffle buffer is learned (:meth:`operators.models.ModelLogic.on_eof`),
    they are the weights of the final scores, not those of the exported models.
    """
    weights = churn_shares(state.tasks["churn"], state.floor_loss, min_examples, state.silence.curve() is not None, state.frozen)
    propensity = state.tasks["propensity"].shares(min_examples)
    return {
        "churn": {
            # The learned chain's share of the churn blend (churn's blend has no mixtures).
            "trust": round(weights[0], 4),
            "shares": {k: round(w, 4) for k, w in zip(("learned", "prior", "silence_floor"), weights, strict=True)},
        },
        "propensity": {
            "trust": round(state.tasks["propensity"].trust(min_examples), 4),
            "shares": {"learned": round(propensity[0], 4), "prior": round(propensity[1], 4), **_mixed(propensity[2])},
        },
    }


def _mixed(weights: tuple[float, ...]) -> dict[str, float]:
    """Return each mixture's weight by its name, ``mixed_A`` for the learned model's share ``A`` in it."""
    return {f"mixed_{a:g}": round(w, 4) for a, w in zip(MIXES, weights, strict=True)}


def models_report(
    state: ModelState, min_examples: int, *, stack: bool, with_state: bool = False, trust: dict[str, dict[str, Any]] | None = None
) -> ModelReport:
    """Return the models' quality figures, priors and clusters (and their state, to export).

    ``trust``: :func:`trust_now` as taken when the scores to report were (by default, now).
    """
    silhouette = state.clusters.silhouette()
    tasks = {name: task.report(min_examples) for name, task in state.tasks.items()}
    for name, prior in (("churn", state.priors["sessions"]), ("propensity", state.priors["purchases"])):
        params = prior.params
        tasks[name]["prior"] = {
            "over": "sessions" if name == "churn" else "purchases",
            "customers": len(prior.sample),
            "fits": prior.fits,
            "params": None if params is None else {k: round(getattr(params, k), 4) for k in ("r", "alpha", "a", "b")},
        }
    for name, weights in (trust_now(state, min_examples) if trust is None else trust).items():
        tasks[name].update(weights)
    curve = state.silence
    # Chance of no return in the next interval by intervals already silent (None: too few examples).
    tasks["churn"]["silence_curve"] = [None if (q := curve.quiet(b)) is None else round(q, 4) for b in range(len(curve.examples))]
    # The same for really new customers, by intervals of age (rows) and of silence (columns).
    tasks["churn"]["silence_young"] = [
        [None if (q := curve.young_quiet(a, b)) is None else round(q, 4) for b in range(AGE_BANDS)] for a in range(AGE_BANDS)
    ]
    if stack:
        stacks = state.combiner.report()
        for name in TASKS:
            tasks[name]["stack"] = {**state.moments.report(), **stacks[name]}
    return ModelReport(
        model_version=state.model_version,
        tasks=tasks,
        clusters=state.clusters.describe(),
        silhouette=None if silhouette is None else round(silhouette, 4),
        scored=state.scored,
        state=encode_state(state) if with_state else None,
    )

