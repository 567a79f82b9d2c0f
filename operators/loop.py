"""Close the loop: pick each trigger's variant, follow it to its conversion, measure uplift.

One global keyed step (key ``"loop"``) after the steps that fire triggers. It
receives every trigger (held-out would-be triggers included, each treated one
carrying all its variants' payloads) and the customers' goal candidates
(:class:`~operators.goals.GoalEvent`: purchases, or whatever event types the
goals name; a small share of events), the identity merges; in a replay also
:class:`~journeyflow.step_records.EndOfInput`, which only tells the last event time. A dataflow has no feedback edges, so the
bandit has to live where both the choices and the outcomes pass: here.

Guarantees:

* Variants: a treated trigger of a rule with variants gets the variant a
  Thompson-sampling bandit (River's ``bandit.ThompsonSampling`` over Beta
  posteriors, one per rule, seeded) picks; held-out users never reach the
  bandit, so the holdout stays a fixed, unbiased share. The bandit learns a
  reward of 1 at a conversion and 0 when the window passes without one.
* Attribution, in event time: a trigger converts at the first goal event of
  its user at or after its time and within its window (not the event that
  caused it), and only once. Each conversion is one :class:`Conversion`.
* Identity: when an anonymous device logs in (an
  :class:`~journeyflow.records.IdentityMerge`), the triggers it is followed
  for pass to the customer, so a visitor who converts after logging in is
  credited (the conversion names the customer).
* Order: triggers that took the longer path (through the models) can arrive
  after goal events that followed them. Goal events are therefore kept for
  ``reorder_ms`` of event time (at most ``max_goal_events`` per user), and a
  trigger is judged ``reorder_ms`` after its window ends (at the end of a
  replay, as soon as the window has passed). The longest a goal event had to
  wait for its trigger is reported (``loop_max_delay_s``).
* Determinism: one key, one worker, a seeded bandit: a replay with the same
  input gives the same choices. The state, bandits included, is snapshotted.
* Memory: open attributions (one per trigger in its window, plus
  ``reorder_ms``) and recent goal events; both are dropped as event time passes.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bytewax.operators import StatefulLogic
from river import bandit, proba

from journeyflow import metrics
from journeyflow.records import IdentityMerge, Trigger
from journeyflow.step_records import EndOfInput
from operators import loop_report
from operators.expressions import evaluate_safely
from operators.goals import HOLDOUT, TREATMENT, GoalEvent
from operators.loop_records import Conversion, LoopReport
# LoopState and _Open are pickled in snapshots; taken before the split, they name this module.
from operators.loop_state import LoopState, _Open, count_pending, move_open
from operators.rule_types import TriggerRule
from operators.uplift import ArmTally
from operators.loop_codec import LoopRows, decode, encode

__all__ = ["LOOP_KEY", "LoopConfig", "LoopState", "LoopLogic"]

LOOP_KEY = "loop"


def _seed(seed: int, rule: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{rule}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class LoopConfig:
    """Settings of the loop step: the rules, the reorder margin, the bandits' seed."""

    rules: Mapping[str, TriggerRule]
    reorder_ms: int = 86_400_000
    max_goal_events: int = 4
    seed: int = 42
    failed: set[str] = field(default_factory=set, compare=False)
    goal_types: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        types: set[str] = set()
        for rule in self.rules.values():
            types |= rule.goal.event_types
        object.__setattr__(self, "goal_types", frozenset(types))

    def build(self, resume_state: bytes | None) -> LoopLogic:
        """Return the logic, from its snapshot if there is one."""
        if resume_state is None:
            return LoopLogic(self, LoopState(), LoopRows())
        state, rows = decode(resume_state)
        if not hasattr(state, "pending"):
            count_pending(state)
        if not hasattr(state, "moved"):
            state.moved = {}
        return LoopLogic(self, state, rows)

    def new_bandit(self, rule: str) -> bandit.ThompsonSampling:
        """Return a fresh bandit for ``rule`` (uniform Beta(1, 1) priors)."""
        return bandit.ThompsonSampling(reward_obj=proba.Beta(), seed=_seed(self.seed, rule))


class LoopLogic(StatefulLogic[Any, Any, bytes]):
    """See the module docstring."""

    def __init__(self, cfg: LoopConfig, state: LoopState, rows: LoopRows) -> None:
        self.cfg = cfg
        self.state = state
        # The open triggers' and goal events' encoded rows (operators/loop_codec.py): a
        # snapshot, taken at every epoch, joins them instead of pickling every object.
        self.rows = rows

    def on_item(self, value: Trigger | GoalEvent | IdentityMerge | EndOfInput) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        if isinstance(value, GoalEvent):
            self._on_goal_event(value, out)
        elif isinstance(value, IdentityMerge):
            self._on_merge(value, out)
        elif isinstance(value, EndOfInput):
            # The replay's last event time, used at the end only: it can arrive
            # before other users' triggers and goal events of the same batch.
            self.state.end_ms = max(self.state.end_ms or value.ts_ms, value.ts_ms)
        else:
            self._on_trigger(value, out)
        self._mature(final=False)
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        state = self.state
        if state.end_ms is not None and (state.watermark_ms is None or state.end_ms > state.watermark_ms):
            state.watermark_ms = state.end_ms
        self._mature(final=True)
        return [self.report()], StatefulLogic.RETAIN

    def notify_at(self) -> None:
        return None

    def snapshot(self) -> bytes:
        return encode(self.state, self.rows)

    # -- triggers ------------------------------------------------------------

    def _on_trigger(self, trigger: Trigger, out: list[Any]) -> None:
        state = self.state
        rule = self.cfg.rules[trigger.rule]
        if state.watermark_ms is None or trigger.ts_ms > state.watermark_ms:
            state.watermark_ms = trigger.ts_ms
        if trigger.variant == HOLDOUT:
            arm = HOLDOUT
        elif trigger.options:
            policy = state.bandits.get(rule.name)
            if policy is None:
                policy = state.bandits[rule.name] = self.cfg.new_bandit(rule.name)
            names: list[int | str] = [name for name, _ in trigger.options]
            arm = str(policy.pull(names))
            trigger = replace(trigger, variant=arm, payload=dict(trigger.options)[arm], options=())
        else:
            arm = TREATMENT
        out.append(trigger)
        followed = _Open(
            trigger.trigger_id, rule.name, arm, trigger.user_id, trigger.ts_ms, trigger.cause_event_id, trigger.payload
        )
        self._converted_earlier(followed, out)
        state.open.setdefault(trigger.user_id, []).append(followed)
        arms = state.pending.setdefault(rule.name, {})
        arms[arm] = arms.get(arm, 0) + 1
        state.seq += 1
        due_ms = trigger.ts_ms + rule.goal.window_ms
        heapq.heappush(state.due, (due_ms, state.seq, trigger.user_id, trigger.trigger_id))
        self.rows.opened(due_ms, state.seq, followed)

    def _converted_earlier(self, followed: _Open, out: list[Any]) -> None:
        """Convert ``followed`` on a goal event that arrived first but happened after it."""
        state = self.state
        rule = self.cfg.rules[followed.rule]
        found = [e for e in state.recent.get(followed.user, ()) if self._converts(rule, followed, e)]
        if found and state.watermark_ms is not None:
            first = min(found, key=lambda e: e.ts_ms)
            state.max_delay_ms = max(state.max_delay_ms, state.watermark_ms - first.ts_ms)
            self._convert(followed, first, out)

    def _on_merge(self, merge: IdentityMerge, out: list[Any]) -> None:
        # The merge can reach this step after the customer's first goal events.
        for followed in move_open(self.state, merge.anonymous_id, merge.user_id):
            if not followed.converted:
                self._converted_earlier(followed, out)

    # -- goal events ---------------------------------------------------------

    def _on_goal_event(self, event: GoalEvent, out: list[Any]) -> None:
        state = self.state
        if state.watermark_ms is None or event.ts_ms > state.watermark_ms:
            state.watermark_ms = event.ts_ms
        for followed in state.open.get(event.user, ()):
            if not followed.converted and self._converts(self.cfg.rules[followed.rule], followed, event):
                self._convert(followed, event, out)
        kept = state.recent.setdefault(event.user, [])
        kept.append(event)
        self.rows.goal_events_changed(event.user)
        if len(kept) > self.cfg.max_goal_events:
            del kept[0]
        state.recent_order.append((event.ts_ms, event.user))

    def _converts(self, rule: TriggerRule, followed: _Open, event: GoalEvent) -> bool:
        goal = rule.goal
        if event.type not in goal.event_types or event.event_id == followed.cause_event_id:
            return False
        if not 0 <= event.ts_ms - followed.ts_ms <= goal.window_ms:
            return False
        if goal.when is None:
            return True
        values = {
            "event": event.fields,
            "trigger": {"rule": followed.rule, "variant": followed.arm, "payload": followed.payload},
        }
        return evaluate_safely(f"{rule.name} goal", goal.when, values, self.cfg.failed) is True

    def _convert(self, followed: _Open, event: GoalEvent, out: list[Any]) -> None:
        followed.converted = True
        followed.value = event.value
        self.state.conversions += 1
        out.append(
            Conversion(
                followed.trigger_id, followed.rule, followed.arm, followed.user, event.ts_ms, event.event_id, event.value
            )
        )
        self._learn(followed, 1.0)

    def _learn(self, followed: _Open, reward: float) -> None:
        policy = self.state.bandits.get(followed.rule)
        if policy is not None and followed.arm not in (HOLDOUT, TREATMENT):
            policy.update(followed.arm, reward)

    # -- time ----------------------------------------------------------------

    def _mature(self, *, final: bool) -> None:
        """Count the triggers whose window (plus the reorder margin) has passed; forget old goal events.

        At the end of the input no goal event can still arrive, so a window
        that has passed is judged without the margin.
        """
        state = self.state
        if state.watermark_ms is None:
            return
        margin = 0 if final else self.cfg.reorder_ms
        changed: set[str] = set()
        while state.due and state.due[0][0] + margin <= state.watermark_ms:
            _, _, user, trigger_id = heapq.heappop(state.due)
            user = state.moved.pop(trigger_id, user)
            followed_list = state.open[user]
            index = next(i for i, f in enumerate(followed_list) if f.trigger_id == trigger_id)
            followed = followed_list.pop(index)
            self.rows.matured(trigger_id)
            if not followed_list:
                del state.open[user]
            state.pending[followed.rule][followed.arm] -= 1
            tally = state.tallies.setdefault(followed.rule, {}).setdefault(followed.arm, ArmTally())
            tally.n += 1
            if followed.converted:
                tally.conversions += 1
                tally.revenue += followed.value
            else:
                tally.expired += 1
                self._learn(followed, 0.0)
                metrics.ATTRIBUTIONS_EXPIRED.labels(rule=followed.rule, variant=followed.arm).inc()
            changed.add(followed.rule)
        cutoff = state.watermark_ms - self.cfg.reorder_ms
        order = state.recent_order
        while order and order[0][0] < cutoff:
            _, user = order.popleft()
            kept = state.recent.get(user)
            if kept is not None:
                kept[:] = [e for e in kept if e.ts_ms >= cutoff]
                self.rows.goal_events_changed(user)
                if not kept:
                    del state.recent[user]
        for name in changed:
            loop_report.publish(name, self.uplift(name))

    # -- reports (operators/loop_report.py) ----------------------------------

    def uplift(self, name: str) -> dict[str, Any]:
        """Return ``name``'s uplift record, pending triggers included."""
        return loop_report.uplift(self.state, self.cfg.rules, name)

    def report(self) -> LoopReport:
        """Return the uplift of every rule and the bandits' posteriors."""
        return loop_report.report(self.state, self.cfg.rules)
