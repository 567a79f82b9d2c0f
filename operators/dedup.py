"""Drop repeated events: the same ``event_id`` for the same user within a window.

Guarantees: an id is remembered for ``window`` of event time after the event
it came with (measured against the user's latest event time), so a repeat
inside the window is always caught, in or out of order. Memory per user is
bounded twice: ids older than the window are forgotten as event time moves
on, and at most ``max_ids`` are kept (the oldest is forgotten first, so a bot
sending thousands of events an hour cannot grow state without bound).

Ids are kept in arrival order; expiry pops from the front and stops at the
first id still inside the window, so an id that arrived out of order may
outlive its window by at most the allowed lateness. That is cheaper than a
sorted structure and never forgets an id too early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice

__all__ = ["DedupConfig", "DedupState", "is_duplicate", "remember", "expire"]


@dataclass(frozen=True)
class DedupConfig:
    """How long and how many event ids to remember per user."""

    window_ms: int
    max_ids: int

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            msg = f"dedup window must be > 0 ms; got {self.window_ms} instead"
            raise ValueError(msg)
        if self.max_ids <= 0:
            msg = f"dedup max_ids must be > 0; got {self.max_ids} instead"
            raise ValueError(msg)


@dataclass(slots=True)
class DedupState:
    """Ids seen recently, mapped to their event time (epoch ms), oldest first."""

    seen: dict[str, int] = field(default_factory=dict)


def is_duplicate(state: DedupState, event_id: str) -> bool:
    """Return whether ``event_id`` was already seen within the window.

    >>> state = DedupState()
    >>> cfg = DedupConfig(window_ms=1000, max_ids=10)
    >>> remember(state, cfg, "e1", 0)
    >>> is_duplicate(state, "e1"), is_duplicate(state, "e2")
    (True, False)
    """
    return event_id in state.seen


def remember(state: DedupState, cfg: DedupConfig, event_id: str, ts_ms: int) -> None:
    """Remember ``event_id``; forget the oldest id when over the cap."""
    seen = state.seen
    seen[event_id] = ts_ms
    if len(seen) > cfg.max_ids:
        del seen[next(iter(seen))]


def expire(state: DedupState, cfg: DedupConfig, now_ms: int) -> None:
    """Forget ids whose event time is more than the window before ``now_ms``.

    >>> state = DedupState({"a": 0, "b": 500, "c": 900})
    >>> expire(state, DedupConfig(window_ms=1000, max_ids=10), 1600)
    >>> list(state.seen)
    ['c']
    """
    seen = state.seen
    cutoff = now_ms - cfg.window_ms
    expired = 0
    for ts_ms in seen.values():
        if ts_ms >= cutoff:
            break
        expired += 1
    if expired == len(seen):
        # (Often all of them, at a tick after a quiet spell: one call, not one
        # look-up for the oldest per id, each past the slots already deleted.)
        seen.clear()
    elif expired:
        for event_id in list(islice(seen, expired)):
            del seen[event_id]
