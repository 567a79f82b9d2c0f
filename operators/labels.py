"""Training examples that match the question asked at scoring time.

The question: for any known customer, at any moment, active or silent, will
they come back (churn) and will they buy (propensity) within the horizon?
So a *snapshot* of every known customer's features is taken at regular
moments of event time, the same grid for everyone (every ``interval``,
aligned to the epoch), whether they are in a session, between two, or long
silent; each customer gives one snapshot per interval, so a heavy user does
not outvote anyone.

Each snapshot is labelled over the next ``interval`` (one step of a
discrete-time survival model, not the whole horizon):

* ``churn``: ``False`` as soon as the customer is active again within the
  interval (a return after a gap of that length); ``True`` once the interval
  passes in silence (the silence goes on: censored, and the next snapshot
  carries it further).
* ``propensity``: ``True`` as soon as the customer buys within the interval;
  ``False`` once it passes without a purchase.

So every label is known within one interval (a week by default), and a
useful model exists after days of history rather than after a full horizon.
The models step turns these one-interval chances into the horizon's (see
:mod:`operators.models`).

Snapshots stop once a customer has been silent for ``max_silence``. Time
passes by event time (the user's clock, timers in the live worker, ticks and
the end of a replay). Memory per user: at most two pending snapshots of a few
hundred bytes.
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
    "snapshot_times",
]


@dataclass(frozen=True)
class LabelConfig:
    """Spacing of snapshots (the labels' window) and the horizons scores look ahead."""

    interval_ms: int
    """Snapshots fall every interval (epoch-aligned); each is labelled over the next one."""
    churn_horizon_ms: int
    """``churn_risk`` is the chance of no activity within this horizon."""
    purchase_horizon_ms: int
    """``purchase_propensity`` is the chance of a purchase within this horizon."""
    max_silence_ms: int
    """No snapshots of a customer silent for longer than this."""


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

    >>> cfg = LabelConfig(interval_ms=100, churn_horizon_ms=300, purchase_horizon_ms=300, max_silence_ms=1000)
    >>> waiting = [Pending(0, b"x")]
    >>> [(e.task, e.label) for e in on_activity(waiting, cfg, 50, purchased=True)]
    [('churn', False), ('propensity', True)]
    >>> waiting
    []
    """
    done: list[Example] = []
    for p in pending:
        if ts_ms <= p.ts_ms or ts_ms - p.ts_ms > cfg.interval_ms:
            continue
        if p.churn is None:
            p.churn = False
            done.append(Example("churn", p.ts_ms, p.features, False))
        if purchased and p.purchase is None:
            p.purchase = True
            done.append(Example("propensity", p.ts_ms, p.features, True))
    return _settle(pending, done) if done else done


def on_time(pending: list[Pending], cfg: LabelConfig, now_ms: int) -> list[Example]:
    """Resolve the labels whose interval has passed by ``now_ms`` with nothing happening.

    >>> cfg = LabelConfig(interval_ms=100, churn_horizon_ms=300, purchase_horizon_ms=300, max_silence_ms=1000)
    >>> [(e.task, e.label) for e in on_time([Pending(0, b"x")], cfg, 101)]
    [('churn', True), ('propensity', False)]
    """
    done: list[Example] = []
    for p in pending:
        if now_ms - p.ts_ms <= cfg.interval_ms:
            continue
        if p.churn is None:
            p.churn = True
            done.append(Example("churn", p.ts_ms, p.features, True))
        if p.purchase is None:
            p.purchase = False
            done.append(Example("propensity", p.ts_ms, p.features, False))
    return _settle(pending, done) if done else done


def snapshot_times(cfg: LabelConfig, last_snapshot_ms: int, last_seen_ms: int, now_ms: int) -> list[int]:
    """Return the grid moments in ``(last_snapshot_ms, now_ms]`` that are due a snapshot.

    The grid is every ``interval`` from the epoch, the same for every
    customer; moments after ``max_silence`` of silence are skipped.

    >>> cfg = LabelConfig(interval_ms=10, churn_horizon_ms=30, purchase_horizon_ms=30, max_silence_ms=25)
    >>> snapshot_times(cfg, last_snapshot_ms=3, last_seen_ms=12, now_ms=45)
    [10, 20, 30]
    >>> snapshot_times(cfg, last_snapshot_ms=10, last_seen_ms=12, now_ms=19)
    []
    """
    step = cfg.interval_ms
    first = (last_snapshot_ms // step + 1) * step
    last = min(now_ms, last_seen_ms + cfg.max_silence_ms)
    return list(range(first, last + 1, step))
