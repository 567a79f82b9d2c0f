"""BG/NBD: the fit recovers the parameters that made the data; the prior stays bounded and uniform."""

from __future__ import annotations

import numpy as np

from operators import bgnbd
from operators.bgnbd import BgNbd, OnlinePrior


def _simulate(m: BgNbd, n: int, T: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw customers from the BG/NBD story itself (the paper's section 2)."""
    rng = np.random.default_rng(seed)
    xs, txs = [], []
    for _ in range(n):
        rate = rng.gamma(m.r, 1.0 / m.alpha)
        drop = rng.beta(m.a, m.b)
        t, x, tx = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1.0 / rate)
            if t > T:
                break
            x, tx = x + 1, t
            if rng.random() < drop:
                break
        xs.append(x)
        txs.append(tx)
    return np.array(xs, float), np.array(txs), np.full(n, T)


def test_the_fit_recovers_the_parameters_of_simulated_customers() -> None:
    truth = BgNbd(r=0.8, alpha=6.0, a=0.7, b=2.5)
    x, tx, T = _simulate(truth, 6000, 60.0, seed=1)
    found = bgnbd.fit(x, tx, T)
    assert abs(found.r - truth.r) / truth.r < 0.15
    assert abs(found.alpha - truth.alpha) / truth.alpha < 0.2
    # The quantity that matters: the predicted silence matches the simulation's.
    predicted = np.mean([bgnbd.p_none(found, *c, 30.0) for c in zip(x, tx, T, strict=True)])
    expected = np.mean([bgnbd.p_none(truth, *c, 30.0) for c in zip(x, tx, T, strict=True)])
    assert abs(predicted - expected) < 0.02


def test_a_customer_who_stops_is_less_likely_alive_than_one_who_just_came() -> None:
    m = BgNbd(0.243, 4.414, 0.793, 2.426)
    assert bgnbd.p_alive(m, 5, 10.0, 40.0) < bgnbd.p_alive(m, 5, 39.0, 40.0)
    assert bgnbd.p_none(m, 5, 10.0, 40.0, 30.0) > bgnbd.p_none(m, 5, 39.0, 40.0, 30.0)
    assert bgnbd.expected(m, 5, 39.0, 40.0, 30.0) > bgnbd.expected(m, 5, 10.0, 40.0, 30.0)


def test_the_online_prior_keeps_a_bounded_deterministic_sample_and_refits() -> None:
    a, b = OnlinePrior(capacity=50, min_customers=20), OnlinePrior(capacity=50, min_customers=20)
    for i in range(500):
        a.observe(f"user-{i}", float(i % 4), float(i % 4), 10.0)
    for i in reversed(range(500)):
        b.observe(f"user-{i}", float(i % 4), float(i % 4), 10.0)
    assert len(a.sample) == 50 and set(a.sample) == set(b.sample)  # the same customers whatever the order
    assert a.params is not None and a.fits > 1
    assert all(isinstance(k, int) for k in a.sample)  # hashes, never the ids
