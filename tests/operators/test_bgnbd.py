"""BG/NBD: the fit recovers the parameters that made the data; the prior stays bounded and uniform."""

from __future__ import annotations

import pickle

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
        a.observe(f"user-{i}", float(i % 4), float(i % 4), 10.0, 10.0)
    for i in reversed(range(500)):
        b.observe(f"user-{i}", float(i % 4), float(i % 4), 10.0, 10.0)
    assert len(a.sample) == 50 and set(a.sample) == set(b.sample)  # the same customers whatever the order
    assert a.params is not None and a.fits > 1
    assert all(isinstance(k, int) for k in a.sample)  # hashes, never the ids


def test_the_prior_ages_customers_it_no_longer_hears_from() -> None:
    # Each customer is observed last at their last transaction (then falls
    # silent, as one whose weekly snapshots have stopped); the fit must read
    # their T as of the latest observation, so it equals the batch fit of the
    # final figures.
    truth = BgNbd(r=0.8, alpha=6.0, a=0.7, b=2.5)
    x, tx, T = _simulate(truth, 400, 60.0, seed=2)
    prior = OnlinePrior(capacity=1000, min_customers=20)
    for i in np.argsort(tx, kind="stable"):
        prior.observe(f"user-{i}", float(x[i]), float(tx[i]), float(tx[i]), float(tx[i]))
    prior.observe("user-last", 0.0, 0.0, 60.0, 60.0)
    prior.refit_fresh()
    batch = bgnbd.fit(np.append(x, 0.0), np.append(tx, 0.0), np.append(T, 60.0))
    assert prior.fresh is not None and prior.current == prior.fresh
    assert abs(prior.fresh.a - batch.a) / batch.a < 1e-3 and abs(prior.fresh.r - batch.r) / batch.r < 1e-3
    # The steady parameters keep each customer's T as observed (the features' meaning).
    assert prior.params is not None and abs(prior.params.a - batch.a) / batch.a > 0.1


def test_a_warm_start_in_the_flat_valley_does_not_keep_the_fit_there() -> None:
    x, tx, T = _simulate(BgNbd(r=0.8, alpha=6.0, a=0.7, b=2.5), 3000, 60.0, seed=3)
    cold = bgnbd.fit(x, tx, T)
    warm = bgnbd.fit(x, tx, T, start=BgNbd(r=0.8, alpha=6.0, a=500.0, b=2000.0), restart=True)
    ll = {name: float(np.mean(bgnbd.log_likelihood(m, x, tx, T))) for name, m in (("cold", cold), ("warm", warm))}
    assert ll["warm"] >= ll["cold"] - 1e-9


def test_a_sample_pickled_before_the_clock_is_read_as_taken_at_the_next_observation() -> None:
    prior = OnlinePrior(capacity=50, min_customers=1000)
    prior.observe("user-1", 2.0, 5.0, 10.0, 100.0)
    # As pickled before the clock: its third figure was T, no clock attribute.
    state = prior.__dict__
    state["sample"] = {rank: v[:3] for rank, v in state["sample"].items()}
    del state["clock"]
    prior = pickle.loads(pickle.dumps(prior))
    prior.observe("user-2", 0.0, 0.0, 3.0, 200.0)
    assert sorted(prior.sample.values()) == [(0.0, 0.0, 3.0, 197.0), (2.0, 5.0, 10.0, 190.0)]
