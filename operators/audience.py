"""Combine a user's segments and publish their changes: the step after the models.

The per-user journey step decides the segments that depend on the profile
alone; segments over model scores, learned clusters and segment-entry
triggers can only be decided once the scores are known, which is downstream
of the models step (a dataflow cannot feed scores back). This step, keyed by
user again, merges both into the user's one segment list and emits:

* a :class:`SegmentChange` when the list changes (none when it does not),
* the triggers of rules ``on = "segment_entry"``,
* a :class:`Tombstone` on erasure (and, unpublished, when a device merges
  into a customer), and the store rows that keep Redis in step.

Updates of one user reach this step in the order the journey step emitted
them, so changes are published in event order. State per user: the segment
list, the latest scores and trigger cooldowns; a user with none of them is
discarded, and so is every user after its final row (end of input, or
released idle by the journey step's ``idle_release_ms``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from bytewax.operators import StatefulLogic

from journeyflow.records import SNAPSHOT_FIELDS, ProfileRow, SegmentChange, Tombstone, Trigger
from journeyflow.step_records import UserUpdate
from operators import segments as segment_rules
from operators import triggers
from operators.segments import SegmentConfig
from operators.triggers import TriggerConfig
from operators.variables import MODEL
from state.serde import decode_state, encode_state

__all__ = ["AudienceConfig", "AudienceState", "AudienceLogic"]

#: A score the models have not given this user yet reads as null (a cluster
#: is unknown until the clusters' warm-up is over).
_UNSCORED: Final = dict.fromkeys(MODEL)

_SNAPSHOT: Final = frozenset(SNAPSHOT_FIELDS)
#: What a ``cluster:N`` segment reads.
_CLUSTER: Final = ("cluster",)
#: The cooldowns of every user holding none (most users: only segment-entry triggers write
#: here), shared: never written (:meth:`AudienceLogic._entry_triggers` writes into a dict of
#: the user's own and gives this one back when it empties). An empty dict is 64 bytes a user.
_NO_COOLDOWNS: Final[dict[str, int]] = {}
#: No model segment (one immutable object for every state that has none).
_NO_MEMBERS: Final[frozenset[str]] = frozenset()

# What every update reads from modules that are not compiled, held as statics (Final): compiled,
# a name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each), as are the module constants above unless Final.
_PROFILE_ROW: Final = ProfileRow
_SEGMENT_CHANGE: Final = SegmentChange
_SNAPSHOT_FIELDS: Final = SNAPSHOT_FIELDS
_MODEL: Final = MODEL  # (not Final in operators.variables: a look-up here too)
_RETAIN: Final = StatefulLogic.RETAIN
_DISCARD: Final = StatefulLogic.DISCARD


@dataclass(frozen=True)
class AudienceConfig:
    """Rules decided after the models, and whether to write store rows."""

    segments: SegmentConfig
    triggers: TriggerConfig
    store_rows: bool = False
    """Emit :class:`ProfileRow` updates of the segment list and the scores (for Redis)."""
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Segment name -> the variables its rule reads (all segments, decided here or not)."""

    def build(self, resume_state: bytes | None) -> AudienceLogic:
        """Return the logic for one user, from its snapshot if there is one."""
        if resume_state is None:
            return AudienceLogic(self, AudienceState())
        return AudienceLogic(self, decode_state(resume_state, AudienceState))


@dataclass(slots=True, init=False)
class AudienceState:
    """A user's published segment list, latest scores and cooldowns.

    ``__init__`` is written out because, compiled, a dataclass's generated one runs
    interpreted: a state is made at a user's first update here and again after each discard
    (a third of the updates on the benchmark's first 50,000 lines).
    """

    version: int = 1
    segments: tuple[str, ...] = ()
    model_segments: frozenset[str] = _NO_MEMBERS
    model_inputs: tuple[Any, ...] | None = None
    """Inputs of the last model-segment decision: unchanged inputs, unchanged answer."""
    scores: dict[str, Any] = field(default_factory=dict)
    cooldowns: dict[str, int] = field(default_factory=lambda: _NO_COOLDOWNS)

    def __init__(
        self,
        version: int = 1,
        segments: tuple[str, ...] = (),
        model_segments: frozenset[str] = _NO_MEMBERS,
        model_inputs: tuple[Any, ...] | None = None,
        scores: dict[str, Any] | None = None,
        cooldowns: dict[str, int] | None = None,
    ) -> None:
        self.version = version
        self.segments = segments
        self.model_segments = model_segments
        self.model_inputs = model_inputs
        self.scores = {} if scores is None else scores
        self.cooldowns = _NO_COOLDOWNS if cooldowns is None else cooldowns


class AudienceLogic(StatefulLogic[UserUpdate, Any, bytes]):
    """Merge, publish and trigger on one user's segments; see the module docstring."""

    def __init__(self, cfg: AudienceConfig, state: AudienceState) -> None:
        self.cfg = cfg
        self.state = state

    def on_item(self, value: UserUpdate) -> tuple[Iterable[Any], bool]:
        if value.kind == "erase":
            return [self._tombstone(value, "forget")], _DISCARD
        if value.kind == "merge":
            # The device joined a customer: its profile and memberships go (the
            # merge itself is published by the device step).
            return [self._tombstone(value, "merge")], _DISCARD
        if value.kind == "opt_out":
            return self._opt_out(value), _DISCARD
        out: list[Any] = []
        if value.scores is not None:
            self._scores(value, out)
        scores = self.state.scores
        model = self._model_segments(value.values, scores)
        cluster = scores.get("cluster")
        # One set, added to in place (not a union of three, each a new set).
        merged = set(value.segments)
        if model:
            merged.update(model)
        if cluster is not None:
            merged.add(f"cluster:{cluster}")
        segments = tuple(sorted(merged))
        if segments != self.state.segments:
            segments = self.cfg.segments.shared_names(segments)  # (kept until it changes: see shared_names)
            # (The values a change and its triggers read: built only when the list changed.)
            self._publish(value, segments, {**value.values, **scores}, out)
        if value.kind == "final" and value.profile is not None:
            # The scores go into the update's own profile (the same keys in the same order as a
            # merged copy): the final update is this step's alone, and read no more after this.
            fields = value.profile
            fields.update(self.state.scores)
            out.append(_PROFILE_ROW(value.user_id, value.ts_ms, fields, segments, final=True))
            # The last update of the user's state (end of input, or released
            # idle): a user who comes back later starts afresh here too.
            return out, _DISCARD
        return out, self._retain()

    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def _scores(self, update: UserUpdate, out: list[Any]) -> None:
        """Keep the latest of each score; write the scores that changed to the store.

        Merged, not replaced: an update scored without a cluster placement
        keeps the user's cluster (and ``cluster:N`` segment).
        """
        before = self.state.scores
        scores = {**before, **update.scores}  # type: ignore[dict-item]
        self.state.scores = scores
        if self.cfg.store_rows:
            changed = {n: scores[n] for n in _MODEL if n in scores and before.get(n) != scores[n]}
            if changed:
                out.append(_PROFILE_ROW(update.user_id, update.ts_ms, changed))

    def _model_segments(self, values: dict[str, Any], scores: dict[str, Any]) -> frozenset[str]:
        """Decide the segments over the scores, reading ``scores`` first, then the update's ``values``."""
        cfg = self.cfg.segments
        if not cfg.rules:
            return self.state.model_segments
        # Until the models have scored this user, a rule over the scores keeps
        # what was decided (segment_rules.MISSING). (The scores win, as in the
        # merged values a change publishes: no merged dict per update.)
        missing = segment_rules.MISSING
        inputs = tuple(
            [scores[name] if name in scores else values.get(name, missing) for name in cfg.variables]
        )
        state = self.state
        members = segment_rules.evaluate(cfg, inputs, state.model_segments, state.model_inputs)
        state.model_segments = members
        # (A user not scored yet keeps the tuple every such user shares: the same values.)
        state.model_inputs = cfg.unknown if inputs == cfg.unknown else inputs
        return members

    def _publish(
        self, update: UserUpdate, segments: tuple[str, ...], values: dict[str, Any], out: list[Any]
    ) -> None:
        before = self.state.segments
        entered = tuple(s for s in segments if s not in before)
        exited = tuple(s for s in before if s not in segments)
        self.state.segments = segments
        # Positional arguments: SegmentChange's __init__ runs interpreted, and matching nine
        # keywords to its parameters cost more than the rest of the call.
        change = _SEGMENT_CHANGE(
            update.user_id, update.ts_ms, entered, exited, segments, update.cause_event_id,
            values, update.cause, self._fields(entered + exited),
        )  # fmt: skip
        out.append(change)
        if self.cfg.store_rows:
            out.append(_PROFILE_ROW(update.user_id, update.ts_ms, {}, segments))
        for segment in entered:
            out.extend(self._entry_triggers(update, segment, values))

    def _fields(self, changed: tuple[str, ...]) -> tuple[str, ...]:
        """Return the snapshot fields, then what the ``changed`` segments' rules read, each once, first seen first."""
        reads = self.cfg.reads
        extra: dict[str, None] | None = None
        for segment in changed:
            for name in reads.get(segment, _CLUSTER if segment.startswith("cluster:") else ()):
                if name not in _SNAPSHOT:
                    if extra is None:
                        extra = {}
                    extra[name] = None
        # Most changes read nothing beyond the snapshot: its tuple as is, nothing built.
        return _SNAPSHOT_FIELDS if extra is None else (*_SNAPSHOT_FIELDS, *extra)

    def _entry_triggers(self, update: UserUpdate, segment: str, values: dict[str, Any]) -> list[Trigger]:
        fired = []
        cooldowns = self.state.cooldowns
        if cooldowns is _NO_COOLDOWNS:
            cooldowns = {}
        for rule in self.cfg.triggers.on("segment_entry"):
            if rule.segment != segment:
                continue
            cause = f"{segment}|{update.cause_event_id or update.ts_ms}"
            trigger = triggers.fire(
                self.cfg.triggers,
                rule,
                user=update.user_id,
                ts_ms=update.ts_ms,
                cause=cause,
                cause_event_id=update.cause_event_id,
                values={**_UNSCORED, **values, "segment": segment},
                cooldowns=cooldowns,
            )
            if trigger is not None:
                fired.append(trigger)
        triggers.prune_cooldowns(self.cfg.triggers, cooldowns, update.ts_ms)
        self.state.cooldowns = cooldowns if cooldowns else _NO_COOLDOWNS
        return fired

    def _tombstone(self, update: UserUpdate, reason: str) -> Tombstone:
        return Tombstone(update.user_id, update.ts_ms, update.cause_event_id, self.state.segments, reason, update.aliases)

    def _opt_out(self, update: UserUpdate) -> list[Any]:
        out: list[Any] = []
        before = self.state.segments
        if before:
            out.append(
                _SEGMENT_CHANGE(
                    user_id=update.user_id,
                    ts_ms=update.ts_ms,
                    entered=(),
                    exited=before,
                    segments=(),
                    cause_event_id=update.cause_event_id,
                    profile={},
                    cause="consent",
                )
            )
        # The store forgets the profile too; this tombstone is not published.
        out.append(self._tombstone(update, "consent"))
        return out

    def _retain(self) -> bool:
        state = self.state
        if state.segments or state.scores or state.cooldowns:
            return _RETAIN
        return _DISCARD
