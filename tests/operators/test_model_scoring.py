"""The models' scoring path (packed rows, cached scaler figures, tasks without a say skipped) gives
exactly the scores of the plain computation: River's scaler and classifiers on one dict per row."""

from __future__ import annotations

import math
import random

import pytest

from journeyflow.step_records import UserUpdate
from operators import bgnbd
from operators.features import CLASSIFIER_FEATURES, PRIOR_STATS, TIMED, pack, pack_rows
from operators.labels import Example
from operators.model_scoring import SCORE_DIGITS
from operators.models import _DAY_MS, ModelConfig, ModelLogic
from operators.odds import clip, logit, sigmoid
from operators.weekly import MIXES

CFG = ModelConfig(learning_rates={"propensity": 0.05, "churn": 0.05}, clusters=3, cluster_halflife=0.05, seed=1)
INTERVAL_DAYS = CFG.interval_ms / _DAY_MS


def _rows(rng: random.Random) -> list[dict[str, float]]:
    """Return five rows along a silent path: the steady features stay, the timed ones and the age move."""
    first = {name: rng.gauss(0, 1) for name in CLASSIFIER_FEATURES}
    sessions = float(rng.randrange(0, 12))
    age = rng.uniform(0, 60)
    first.update(
        bg_sessions_x=sessions,
        bg_sessions_tx=rng.uniform(0, age) if sessions else 0.0,
        bg_purchases_x=float(rng.randrange(0, 3)),
        bg_purchases_tx=rng.uniform(0, age),
        bg_age=age,
    )
    rows = [first]
    for k in range(1, 5):
        row = dict(first)
        for i in TIMED:
            row[CLASSIFIER_FEATURES[i]] = rng.gauss(0, 1)
        row["bg_age"] = age + k * INTERVAL_DAYS
        rows.append(row)
    return rows


def _p_none(m: bgnbd.BgNbd, x: float, t_x: float, T: float, tau: float) -> float:
    # The paper's composition, through p_alive (bgnbd.p_none inlines it).
    quiet = math.exp((m.r + x) * math.log((m.alpha + T) / (m.alpha + T + tau)))
    return 1.0 - bgnbd.p_alive(m, x, t_x, T) * (1.0 - quiet)


def _plain_score(logic: ModelLogic, rows: list[dict[str, float]], now_ms: int) -> dict[str, float]:
    """Return the scores as computed before the scoring path was made cheap (every row scaled and scored)."""
    state = logic.state
    tasks = state.tasks
    s = state.priors["sessions"].params or bgnbd.BgNbd()
    b = state.priors["purchases"].params or bgnbd.BgNbd()

    def inputs(v: dict[str, float]) -> tuple[dict[str, float], float, float]:
        x = state.scaler.transform_one({name: v[name] for name in CLASSIFIER_FEATURES})
        quiet = _p_none(s, v["bg_sessions_x"], v["bg_sessions_tx"], v["bg_age"], INTERVAL_DAYS)
        no_buy = _p_none(b, v["bg_purchases_x"], v["bg_purchases_tx"], v["bg_age"], INTERVAL_DAYS)
        x["prior_quiet"] = logit(quiet) / 4.0
        x["prior_no_purchase"] = logit(no_buy) / 4.0
        return x, quiet, no_buy

    log_quiet = 0.0
    for weight, v in zip(logic.scorer.weights["churn"], rows, strict=False):
        x, _, _ = inputs(v)
        log_quiet += weight * math.log(clip(tasks["churn"].predict(x)))
    now = rows[0]
    x, _, week_no_buy = inputs(now)
    horizon = CFG.horizons_ms["churn"] / _DAY_MS
    prior_quiet = _p_none(s, now["bg_sessions_x"], now["bg_sessions_tx"], now["bg_age"], horizon)
    prior_no_buy = _p_none(b, now["bg_purchases_x"], now["bg_purchases_tx"], now["bg_age"], CFG.horizons_ms["propensity"] / _DAY_MS)
    # Propensity: the interval's odds of the learned model and of each of its mixtures with the prior
    # (operators.weekly.MIXES), relative to the prior's, carried to the horizon; a Bayesian average of them and the prior.
    p, q = tasks["propensity"].predict(x), 1.0 - week_no_buy
    propensities = [sigmoid(logit(1.0 - prior_no_buy) + (logit(m) - logit(q))) for m in (p, *(a * p + (1.0 - a) * q for a in MIXES))]
    propensity = tasks["propensity"]
    candidates = [(1.0 - prior_no_buy, propensity.prior_loss)]
    if propensity.examples >= max(1, logic.min_examples):
        candidates += list(zip(propensities, [propensity.loss, *propensity.mix_losses], strict=True))
    published = {"propensity": _average(candidates)}
    floor = state.silence.p_silent(math.expm1(now["days_since_last_seen"]), INTERVAL_DAYS, logic.scorer.weights["churn"], now["bg_age"], now_ms)
    # Churn: a Bayesian average of the learned chain, the prior and the floor by their judged log-losses
    # as the week started (operators.model_trust.freeze_losses).
    churn = tasks["churn"]
    assert state.frozen is not None and (state.frozen[2] > 0.0 or not tasks["churn"].examples)
    _, learned_loss, prior_loss, floor_loss = state.frozen
    candidates = [(prior_quiet, prior_loss)]
    if churn.examples >= max(1, logic.min_examples):
        candidates.append((math.exp(log_quiet), learned_loss))
    if floor is not None:
        candidates.append((floor, floor_loss))
    published["churn"] = _average(candidates)
    if floor is not None:
        published["churn"] = max(published["churn"], floor)
    published["propensity"] = min(published["propensity"], 1.0 - published["churn"])
    return {"purchase_propensity": round(published["propensity"], SCORE_DIGITS), "churn_risk": round(published["churn"], SCORE_DIGITS)}


def _average(candidates: list[tuple[float, float]]) -> float:
    """Return the Bayesian average of ``(chance, judged loss)`` candidates (one more than 50 nats behind the best has no say)."""
    best = min(loss for _, loss in candidates)
    weights = [math.exp(best - loss) if loss - best <= 50.0 else 0.0 for _, loss in candidates]
    return sum(w * p for w, (p, _) in zip(weights, candidates, strict=True)) / sum(weights)


def _learn(logic: ModelLogic, rng: random.Random, tasks: tuple[str, ...], n: int) -> None:
    for i in range(n):
        label = rng.random() < 0.4
        vector = _rows(rng)[0]
        examples = tuple(Example(task, i, pack(vector), label) for task in tasks)
        # An hour apart: the churn blend's weights are those judged as the latest week started.
        logic.on_item(UserUpdate(f"u{i % 200}", i * 3_600_000, "update", "event", None, (), {}, examples=examples))


@pytest.mark.parametrize(
    ("tasks", "min_examples"),
    [((), 0), (("churn",), 0), (("churn", "propensity"), 0), (("churn", "propensity"), 10_000)],
    ids=["untrained", "churn only", "both", "neither has a say"],
)
def test_scores_are_exactly_those_of_the_plain_computation(tasks: tuple[str, ...], min_examples: int) -> None:
    rng = random.Random(5)
    logic = ModelConfig(**{**CFG.__dict__, "min_examples": min_examples}).build(None)
    _learn(logic, rng, tasks, 1500)
    trusted = {name for name, task in logic.state.tasks.items() if task.trust(min_examples) > 0}
    assert trusted == (set(tasks) if min_examples == 0 else set())
    # Coin-flip labels: a mixture of the propensity model and the prior holds weight once it learns (the plain computation has them).
    assert (max(logic.state.tasks["propensity"].shares(min_examples)[2]) > 0.0) == ("propensity" in tasks and min_examples == 0)
    for n in range(300):
        rows = _rows(rng)
        assert logic.scorer.score(logic.state, pack_rows(rows), n * 60_000) == _plain_score(logic, rows, n * 60_000)
        assert set(rows[0]) == set(CLASSIFIER_FEATURES + PRIOR_STATS)


def test_p_none_is_exactly_the_composition_through_p_alive() -> None:
    # Scores are rounded to 4 places, which hides a last-bit change: the inlined p_none is compared bare.
    rng = random.Random(11)
    for _ in range(20_000):
        m = bgnbd.BgNbd(rng.uniform(0.01, 10), rng.uniform(0.01, 50), rng.uniform(0.01, 5), rng.uniform(0.01, 50))
        x = float(rng.randrange(0, 20))
        T = rng.uniform(0, 400)
        t_x = rng.uniform(0, T) if x else 0.0
        tau = rng.choice((7.0, 30.0, rng.uniform(0, 60)))
        assert bgnbd.p_none(m, x, t_x, T, tau) == _p_none(m, x, t_x, T, tau)
