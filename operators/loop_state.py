"""The closed loop's state (:mod:`operators.loop`): triggers being followed, recent goal events, tallies, bandits.

Instances are pickled in the loop step's snapshots: a rename or a moved class
breaks recovery, unless the old path still imports it (``operators.loop``
re-exports :class:`LoopState` and ``_Open``, under which older snapshots name them).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from river import bandit

from operators.goals import GoalEvent
from operators.uplift import ArmTally

__all__ = ["LoopState", "count_pending", "move_open"]


@dataclass(slots=True)
class _Open:
    """A trigger being followed until its window (plus the reorder margin) passes."""

    trigger_id: str
    rule: str
    arm: str
    user: str
    ts_ms: int
    cause_event_id: str | None
    payload: dict[str, Any]
    converted: bool = False
    value: float = 0.0


@dataclass(slots=True)
class LoopState:
    """Everything the loop step keeps (one key)."""

    version: int = 1
    watermark_ms: int | None = None
    end_ms: int | None = None
    """A replay's last event time (from :class:`~journeyflow.step_records.EndOfInput`), applied at the end."""
    open: dict[str, list[_Open]] = field(default_factory=dict)
    """User -> triggers being followed."""
    due: list[tuple[int, int, str, str]] = field(default_factory=list)
    """Heap of (window end, sequence, user, trigger id)."""
    seq: int = 0
    recent: dict[str, list[GoalEvent]] = field(default_factory=dict)
    """User -> goal events within the reorder margin, oldest first."""
    recent_order: deque[tuple[int, str]] = field(default_factory=deque)
    tallies: dict[str, dict[str, ArmTally]] = field(default_factory=dict)
    bandits: dict[str, bandit.ThompsonSampling] = field(default_factory=dict)
    conversions: int = 0
    max_delay_ms: int = 0
    # A snapshot taken before this field existed lacks it: the builder
    # recounts it from ``open``.
    pending: dict[str, dict[str, int]] = field(default_factory=dict)
    """Rule -> arm -> triggers being followed: kept as they open and mature, so
    a rule's uplift costs its arms, not a walk over every open trigger."""
    # Also missing from older snapshots: the builder adds it empty.
    moved: dict[str, str] = field(default_factory=dict)
    """Trigger id -> the customer now following it, for a trigger of an anonymous
    device that logged in (``due`` still names the device)."""


def count_pending(state: LoopState) -> None:
    """Count the open triggers per rule and arm (for a snapshot taken before ``pending`` existed)."""
    pending: dict[str, dict[str, int]] = {}
    for followed_list in state.open.values():
        for followed in followed_list:
            arms = pending.setdefault(followed.rule, {})
            arms[followed.arm] = arms.get(followed.arm, 0) + 1
    state.pending = pending


def move_open(state: LoopState, anonymous_id: str, user_id: str) -> list[_Open]:
    """Hand the triggers a device is followed for to the customer it logged in as; return them.

    A visitor's conversion after login is the customer's goal event, so the
    customer's goal events are what the device's triggers are judged on now.
    """
    moved = state.open.pop(anonymous_id, [])
    for followed in moved:
        followed.user = user_id
        state.moved[followed.trigger_id] = user_id
    if moved:
        state.open.setdefault(user_id, []).extend(moved)
    return moved
