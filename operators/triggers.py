"""Fire trigger rules: conditions, cooldowns, holdouts, deterministic ids.

Guarantees:

* ``trigger_id`` is a hash of (rule, user, cause), where the cause is the
  event id, the session id or the entered segment: the same input gives the
  same id, so a consumer can drop the repeats a restart may produce.
* Cooldown: a rule fires at most once per user (and per ``cooldown_key``
  value) within ``cooldown`` of event time, in or out of order. Cooldown
  entries are forgotten once their cooldown has passed (bounded state).
* Holdout: a user is in a rule's holdout when a hash of (rule, user) falls
  below the rule's holdout share: deterministic, the same on every worker and
  every run. A held-out user's trigger becomes a ``variant: "holdout"``
  record on the holdouts output instead of the triggers output, cooldown
  included, so treatment and holdout can be compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from journeyflow.records import Trigger
from operators import goals
from operators.expressions import evaluate_safely
from operators.rule_types import TriggerRule
from operators.variables import RECOMMENDATIONS

__all__ = ["TriggerConfig", "trigger_id", "in_holdout", "fire", "prune_cooldowns"]

# A firing's record class, held as a static: compiled, a name imported from a module that is
# not compiled is looked up in this module's globals dict at every use (about 120 instructions each).
_TRIGGER: Final = Trigger


@dataclass(frozen=True)
class TriggerConfig:
    """The trigger rules one step evaluates."""

    rules: tuple[TriggerRule, ...]
    failed: set[str] = field(default_factory=set, compare=False)
    cooldowns_ms: dict[str, int] = field(init=False, compare=False)
    """Rule name -> cooldown, for forgetting cooldowns that have passed."""
    by_kind: dict[str, tuple[TriggerRule, ...]] = field(init=False, compare=False)
    """What :meth:`on` returns, listed once (the audience step asks at every segment entry)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cooldowns_ms", {rule.name: rule.cooldown_ms for rule in self.rules})
        kinds = dict.fromkeys(rule.on for rule in self.rules)
        object.__setattr__(self, "by_kind", {k: tuple(r for r in self.rules if r.on == k) for k in kinds})

    def on(self, kind: str) -> tuple[TriggerRule, ...]:
        """Return the rules evaluated on ``kind`` (event, session_close, segment_entry), in rule order."""
        return self.by_kind.get(kind, ())


def trigger_id(rule: str, user: str, cause: str) -> str:
    """Return the deterministic id of ``rule`` firing for ``user`` because of ``cause``.

    >>> trigger_id("r", "u1", "e-1") == trigger_id("r", "u1", "e-1")
    True
    >>> len(trigger_id("r", "u1", "e-1"))
    32
    """
    return hashlib.blake2b(f"{rule}\x00{user}\x00{cause}".encode(), digest_size=16).hexdigest()


def in_holdout(rule: TriggerRule, user: str) -> bool:
    """Return whether ``user`` is in ``rule``'s holdout group."""
    return goals.holdout_draw(rule.name, user) < rule.holdout if rule.holdout > 0 else False


def fire(
    cfg: TriggerConfig,
    rule: TriggerRule,
    *,
    user: str,
    ts_ms: int,
    cause: str,
    cause_event_id: str | None,
    values: Mapping[str, Any],
    cooldowns: dict[str, int],
) -> Trigger | None:
    """Return the trigger ``rule`` fires now, or ``None``; record its cooldown.

    ``values`` holds every variable the rule reads. ``cooldowns`` maps
    ``rule|key`` to the event time of the last firing.
    """
    if evaluate_safely(rule.name, rule.when, values, cfg.failed) is not True:
        return None
    scope = rule.name
    if rule.cooldown_key is not None:
        scope = f"{rule.name}|{evaluate_safely(rule.name, rule.cooldown_key, values, cfg.failed)}"
    if rule.cooldown_ms:
        last = cooldowns.get(scope)
        if last is not None and abs(ts_ms - last) < rule.cooldown_ms:
            return None
        cooldowns[scope] = ts_ms if last is None else max(ts_ms, last)
    payload = {
        # The recommender's list step fills in what reads the recommendations.
        key: None if RECOMMENDATIONS in expression.variables else evaluate_safely(rule.name, expression, values, cfg.failed)
        for key, expression in rule.payload
    }
    held_out = in_holdout(rule, user)
    return _TRIGGER(
        trigger_id=trigger_id(rule.name, user, cause),
        rule=rule.name,
        user_id=user,
        ts_ms=ts_ms,
        cause_event_id=cause_event_id,
        variant="holdout" if held_out else "treatment",
        payload=payload,
        # The loop step picks a variant for a treated trigger (operators/loop.py).
        options=() if held_out else goals.variant_payloads(
            rule.variants, payload, lambda expression: evaluate_safely(rule.name, expression, values, cfg.failed)
        ),
    )


def prune_cooldowns(cfg: TriggerConfig, cooldowns: dict[str, int], now_ms: int) -> None:
    """Forget cooldowns that have passed as of ``now_ms``."""
    if not cooldowns:
        return
    limits = cfg.cooldowns_ms
    for scope in [s for s, ts in cooldowns.items() if now_ms - ts >= limits.get(s.split("|", 1)[0], 0)]:
        del cooldowns[scope]
