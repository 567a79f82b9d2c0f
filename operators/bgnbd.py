"""The BG/NBD model (Fader, Hardie & Lee 2005): a prior over returns that needs no labels.

Each customer, while alive, transacts as a Poisson process of rate
``lambda ~ Gamma(r, alpha)`` and, after each transaction, drops out for good
with probability ``p ~ Beta(a, b)``. Four global parameters, fitted by
maximum likelihood from each customer's ``x`` (repeat transactions), ``t_x``
(time of the last one) and ``T`` (time since the first), give per customer:

* :func:`p_alive`: the chance the customer is still active;
* :func:`p_none`: the chance of no transaction in the next ``tau``;
* :func:`expected`: the expected number of transactions in the next ``tau``.

Times are in days. :class:`OnlinePrior` keeps a bounded, uniform sample of
customers and re-fits the parameters as data flows in (the models step).

Why not a library: ``lifetimes`` (last release 2020, archived) pulls pandas,
autograd and dill; ``btyd`` (alpha) pins pymc 4 and autograd 1.4;
``pymc-marketing`` (kept, Python >= 3.11) brings pymc, pytensor, arviz,
matplotlib and scikit-learn for a four-parameter maximum likelihood. The
likelihood below is the paper's equation (6) and scipy, already installed
with River, fits it.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

__all__ = ["BgNbd", "OnlinePrior", "fit", "log_likelihood", "p_alive", "p_none", "expected"]


@dataclass(frozen=True, slots=True)
class BgNbd:
    """The four parameters: ``r``, ``alpha`` (days) of the rates, ``a``, ``b`` of the dropout."""

    r: float = 0.5
    alpha: float = 10.0
    a: float = 1.0
    b: float = 3.0


def log_likelihood(m: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Return each customer's log-likelihood (the paper's equation 6).

    >>> ll = log_likelihood(BgNbd(0.243, 4.414, 0.793, 2.426), np.array([0, 2]), np.array([0.0, 30.0]), np.array([38.86, 38.86]))
    >>> [round(float(v), 3) for v in ll]
    [-0.555, -9.451]
    """
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    common = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) - special.betaln(a, b)
    first = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
    # Only customers with repeat transactions may have dropped out after the last one.
    safe_x = np.maximum(x, 1)
    second = np.where(
        x > 0, special.betaln(a + 1, b + safe_x - 1) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return common + np.logaddexp(first, second)


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, start: BgNbd | None = None) -> BgNbd:
    """Return the maximum-likelihood parameters for the customers ``(x, t_x, T)``.

    Optimised over the logarithms of the parameters (all positive), from
    ``start`` (the previous fit, so a re-fit takes a few steps).
    """
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)
    begin = start or BgNbd()
    theta0 = np.log([begin.r, begin.alpha, begin.a, begin.b])

    def loss(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(np.clip(theta, -9.0, 9.0))
        value = -float(np.mean(log_likelihood(BgNbd(r, alpha, a, b), x, t_x, T)))
        return value if math.isfinite(value) else 1e12

    found = optimize.minimize(loss, theta0, method="L-BFGS-B")
    r, alpha, a, b = (float(v) for v in np.exp(np.clip(found.x, -9.0, 9.0)))
    return BgNbd(r, alpha, a, b)


def _alive_odds(m: BgNbd, x: float, t_x: float, T: float) -> float:
    """Return P(dead) / P(alive); 0 without repeat transactions (the model's convention)."""
    if x <= 0:
        return 0.0
    exponent = math.log(m.a / (m.b + x - 1)) + (m.r + x) * math.log((m.alpha + T) / (m.alpha + t_x))
    # Beyond e**700 the customer is as good as gone (and math.exp would overflow).
    return math.exp(min(700.0, exponent))


def p_alive(m: BgNbd, x: float, t_x: float, T: float) -> float:
    """Return the probability that the customer is still active at ``T``.

    >>> round(p_alive(BgNbd(0.243, 4.414, 0.793, 2.426), 2, 30.0, 38.86), 3)
    0.721
    """
    return 1.0 / (1.0 + _alive_odds(m, x, t_x, T))


def p_none(m: BgNbd, x: float, t_x: float, T: float, tau: float) -> float:
    """Return the probability of no transaction in ``(T, T + tau]``.

    Alive, the rate's posterior is ``Gamma(r + x, alpha + T)``, so the chance
    of silence for ``tau`` is ``((alpha + T) / (alpha + T + tau)) ** (r + x)``.

    >>> m = BgNbd(0.243, 4.414, 0.793, 2.426)
    >>> round(p_none(m, 0, 0.0, 38.86, 0.0), 3), round(p_none(m, 2, 30.0, 38.86, 39.0), 3)
    (1.0, 0.45)
    """
    # p_alive and _alive_odds inlined (the same expressions): the models step
    # asks this a dozen times per score, and the calls cost as much as the sums.
    r, alpha = m.r, m.alpha
    if x <= 0:
        odds = 0.0
    else:
        exponent = math.log(m.a / (m.b + x - 1)) + (r + x) * math.log((alpha + T) / (alpha + t_x))
        odds = math.exp(min(700.0, exponent))
    alive = 1.0 / (1.0 + odds)
    quiet = math.exp((r + x) * math.log((alpha + T) / (alpha + T + tau)))
    return 1.0 - alive * (1.0 - quiet)


def expected(m: BgNbd, x: float, t_x: float, T: float, tau: float) -> float:
    """Return the expected number of transactions in ``(T, T + tau]`` (the paper's equation 10).

    >>> round(expected(BgNbd(0.243, 4.414, 0.793, 2.426), 2, 30.43, 38.86, 39.0), 3)
    1.226
    """
    # The closed form holds for any a except exactly 1, where it is 0/0.
    a = m.a if abs(m.a - 1.0) > 1e-9 else 1.0 + 1e-9
    z = tau / (m.alpha + T + tau)
    hyper = special.hyp2f1(m.r + x, m.b + x, a + m.b + x - 1, z)
    quiet = math.exp((m.r + x) * math.log((m.alpha + T) / (m.alpha + T + tau)))
    value = (a + m.b + x - 1) / (a - 1) * (1.0 - quiet * hyper)
    return float(value * p_alive(m, x, t_x, T))


def _rank(key: str) -> int:
    """Return a stable 64-bit hash of a customer key (Python's ``hash`` changes per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


@dataclass
class OnlinePrior:
    """BG/NBD parameters re-fitted as customers are observed; see the module docstring.

    The sample keeps the ``capacity`` customers with the smallest key hashes
    (a bottom-k sketch: uniform over customers, deterministic, bounded), each
    with its latest ``(x, t_x, T)``. Only the hash is kept, never the key.
    A fit runs once the sample holds ``min_customers``, then whenever the
    observations since the last fit reach ``refit_share`` of all so far (each
    time they double, by default), and at least every ``max_gap``
    observations: often while the data is young, rarely once the parameters
    have settled (a fit of 2,000 customers costs 0.1-0.5 s here).
    """

    capacity: int = 2000
    min_customers: int = 30
    refit_share: float = 1.0
    max_gap: int = 50_000
    params: BgNbd | None = None
    sample: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    _heap: list[int] = field(default_factory=list)
    """Negated hashes of the sample: the root is the largest, the first to go."""
    since_fit: int = 0
    observed: int = 0
    fits: int = 0

    def observe(self, key: str, x: float, t_x: float, T: float) -> None:
        """Record a customer's latest figures (days); re-fit when due."""
        rank = _rank(key)
        sample = self.sample
        if rank not in sample:
            if len(sample) >= self.capacity:
                if rank > -self._heap[0]:
                    return
                del sample[-heapq.heappop(self._heap)]
            heapq.heappush(self._heap, -rank)
        sample[rank] = (x, t_x, T)
        self.since_fit += 1
        self.observed += 1
        due = min(self.max_gap, self.refit_share * (self.observed - self.since_fit))
        if len(sample) >= self.min_customers and (self.params is None or self.since_fit >= due):
            self.refit()

    def forget(self, key: str) -> None:
        """Drop a customer (erasure) from the sample."""
        rank = _rank(key)
        if self.sample.pop(rank, None) is not None:
            self._heap.remove(-rank)
            heapq.heapify(self._heap)

    def refit(self) -> None:
        """Fit the parameters to the sample now."""
        data = np.array(list(self.sample.values()), dtype=float)
        self.params = fit(data[:, 0], data[:, 1], data[:, 2], self.params)
        self.since_fit = 0
        self.fits += 1
