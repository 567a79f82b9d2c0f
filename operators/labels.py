"""Label past states of a user once the future has told: one mechanism, two tasks.

A *snapshot* is a user's feature vector at a time ``t``. Its labels arrive
late, from what the user does after ``t``:

* ``churn``: 0 as soon as the user is active again within the churn horizon
  after ``t``; 1 once the horizon passes without activity.
* ``purchase`` (propensity): 1 as soon as the user buys within the propensity
  horizon after ``t``; 0 once the horizon passes without a purchase.

Each label becomes a training :class:`Example` the moment it is known; a
snapshot is forgotten once both are. Time passes by event time (the user's
clock, timers in the live worker, the end of a replay), so a user who never
returns is still labelled, no later than the end of the input.

Snapshots are taken at most once per ``interval``: at a session's close, and
while the user is away (so the models also learn what a long absence means).
Memory per user: at most ``horizon / interval + 1`` snapshots of a few hundred
bytes each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "LabelConfig",
    "Pending",
    "Example",
    "on_activity",
    "on_time",
    "idle_snapshot_times",
]


@dataclass(frozen=True)
class LabelConfig:
    """Horizons of the two tasks and the spacing of snapshots."""

    churn_horizon_ms: int
    purchase_horizon_ms: int
    interval_ms: int
    idle_after_ms: int
    """A user counts as away once this long has passed since their last event."""

    @property
    def shortest_horizon_ms(self) -> int:
        """Return the horizon after which the first label can be known by time."""
        return min(self.churn_horizon_ms, self.purchase_horizon_ms)


class Example(NamedTuple):
    """A labelled past state: ``task`` is ``churn`` or ``propensity``."""

    task: str
    ts_ms: int
    features: bytes
    label: bool


@dataclass(slots=True)
class Pending:
    """A snapshot waiting for its labels (``None`` until known)."""

    ts_ms: int
    features: bytes
    churn: bool | None = None
    purchase: bool | None = None


def _settle(pending: list[Pending], done: list[Example]) -> list[Example]:
    pending[:] = [p for p in pending if p.churn is None or p.purchase is None]
    return done


def on_activity(pending: list[Pending], cfg: LabelConfig, ts_ms: int, purchased: bool) -> list[Example]:
    """Resolve what activity at ``ts_ms`` (a purchase, if ``purchased``) tells.

    >>> cfg = LabelConfig(churn_horizon_ms=100, purchase_horizon_ms=100, interval_ms=10, idle_after_ms=5)
    >>> waiting = [Pending(0, b"x")]
    >>> [(e.task, e.label) for e in on_activity(waiting, cfg, 50, purchased=True)]
    [('churn', False), ('propensity', True)]
    >>> waiting
    []
    """
    done: list[Example] = []
    for p in pending:
        if ts_ms <= p.ts_ms:
            continue
        if p.churn is None and ts_ms - p.ts_ms <= cfg.churn_horizon_ms:
            p.churn = False
            done.append(Example("churn", p.ts_ms, p.features, False))
        if purchased and p.purchase is None and ts_ms - p.ts_ms <= cfg.purchase_horizon_ms:
            p.purchase = True
            done.append(Example("propensity", p.ts_ms, p.features, True))
    return _settle(pending, done) if done else done


def on_time(pending: list[Pending], cfg: LabelConfig, now_ms: int) -> list[Example]:
    """Resolve the labels whose horizon has passed by ``now_ms`` with nothing happening.

    >>> cfg = LabelConfig(churn_horizon_ms=100, purchase_horizon_ms=100, interval_ms=10, idle_after_ms=5)
    >>> [(e.task, e.label) for e in on_time([Pending(0, b"x")], cfg, 101)]
    [('churn', True), ('propensity', False)]
    """
    done: list[Example] = []
    for p in pending:
        if p.churn is None and now_ms - p.ts_ms > cfg.churn_horizon_ms:
            p.churn = True
            done.append(Example("churn", p.ts_ms, p.features, True))
        if p.purchase is None and now_ms - p.ts_ms > cfg.purchase_horizon_ms:
            p.purchase = False
            done.append(Example("propensity", p.ts_ms, p.features, False))
    return _settle(pending, done) if done else done


def idle_snapshot_times(cfg: LabelConfig, last_snapshot_ms: int, last_seen_ms: int, now_ms: int) -> list[int]:
    """Return the snapshot times due up to ``now_ms`` while the user was away.

    Slots fall every ``interval`` after the last snapshot; a slot counts
    only if the user had been away for ``idle_after`` by then, and no longer
    than the churn horizon (after that every state would be labelled churned,
    which teaches nothing new).

    >>> cfg = LabelConfig(churn_horizon_ms=100, purchase_horizon_ms=100, interval_ms=10, idle_after_ms=5)
    >>> idle_snapshot_times(cfg, last_snapshot_ms=0, last_seen_ms=12, now_ms=45)
    [20, 30, 40]
    >>> idle_snapshot_times(cfg, last_snapshot_ms=0, last_seen_ms=12, now_ms=500)[-1]
    110
    """
    first = last_snapshot_ms + cfg.interval_ms
    away_from = last_seen_ms + cfg.idle_after_ms
    if first < away_from:
        # Skip the slots that fell while the user was active.
        first += -(-(away_from - first) // cfg.interval_ms) * cfg.interval_ms
    last = min(now_ms, last_seen_ms + cfg.churn_horizon_ms)
    return list(range(first, last + 1, cfg.interval_ms))
