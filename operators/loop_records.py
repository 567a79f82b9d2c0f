"""What the closed loop (:mod:`operators.loop`) emits: conversions and, at the end of a replay, its report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from journeyflow.events import format_ts

__all__ = ["Conversion", "LoopReport"]


@dataclass(frozen=True, slots=True)
class Conversion:
    """A trigger (or held-out would-be trigger) reached its goal (``conversions``)."""

    trigger_id: str
    rule: str
    variant: str
    user_id: str
    ts_ms: int
    cause_event_id: str
    value: float

    def to_json(self) -> bytes:
        """Encode per the wire contract."""
        return orjson.dumps(
            {
                "kind": "conversion",
                "trigger_id": self.trigger_id,
                "rule": self.rule,
                "variant": self.variant,
                "user_id": self.user_id,
                "ts": format_ts(self.ts_ms),
                "cause_event_id": self.cause_event_id,
                "value": round(self.value, 2),
            }
        )


@dataclass(frozen=True, slots=True)
class LoopReport:
    """Uplift per rule and the bandits' state, at the end of a replay."""

    uplift: dict[str, Any]
    bandits: dict[str, dict[str, Any]]
    conversions: int
    max_delay_s: float
    """Longest a goal event was kept before a trigger that came after it (event
    time behind the step's latest): near ``reorder_s``, conversions may be missed."""
