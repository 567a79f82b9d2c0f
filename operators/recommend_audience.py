"""The audience step with each customer's recommendation list in its state.

With the recommender on, the audience step (:mod:`operators.audience`) and
the lists step (:mod:`operators.recommend_lists`) are one keyed step: both
are keyed by user, and every record the audience step publishes used to
cross a second per-user step only to have the list added. Every keyed step
costs per item and per key touched, whatever its logic (notes: a chain of
keyed steps costs about 3 microseconds per item and step), so the answers
join the audience's input instead, and one logic per user runs both parts:

* a :class:`~journeyflow.step_records.UserUpdate` goes to the audience part;
  what it emits goes to the lists part, which adds the list to segment
  changes and trigger payloads and holds a replay's final row;
* a customer's list of :class:`~operators.recommend.RecAnswer` (one per
  batch, from the popularity step), and a journey-step trigger whose payload
  reads ``recommendations``, go to the lists part alone.

Each part keeps its own state and lifetime, exactly as in two steps: a part
that discards its state starts afresh at its next record (as bytewax builds
a new logic for a discarded key), and the key is discarded when both have.
The lists part sees a batch's records in the order the audience part
emitted them, answers in their places, and puts one customer's answers
back in time order (:class:`~operators.recommend_lists.ListLogic`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bytewax.operators import StatefulBatchLogic

from journeyflow.errors import StateSerializationError
from journeyflow.records import ProfileRow, SegmentChange, Tombstone, Trigger
from journeyflow.step_records import UserUpdate
from operators.audience import AudienceConfig, AudienceLogic, AudienceState
from operators.recommend import RecAnswer, RecommendConfig
from operators.recommend_lists import ListLogic, ListState, with_list
from state.serde import decode_state, encode_state

__all__ = ["AudienceListsState", "AudienceListsLogic", "build_audience_lists"]

# The records' classes (modules not compiled) and the answers' named tuple (a Python class)
# as statics (Final): compiled, each is otherwise a look-up in this module's globals dict at
# every use (about 120 instructions), once or more per update and record.
_UPDATE: Final = UserUpdate
_SEGMENT_CHANGE: Final = SegmentChange
_ANSWER: Final = RecAnswer
_TOMBSTONE: Final = Tombstone
_PROFILE_ROW: Final = ProfileRow
_TRIGGER: Final = Trigger


@dataclass(slots=True)
class AudienceListsState:
    """One user's audience state and list state (``None``: that part holds nothing)."""

    version: int = 1
    audience: AudienceState | None = None
    lists: ListState | None = None


class AudienceListsLogic(StatefulBatchLogic[Any, Any, bytes]):
    """Run the audience part, then the lists part, over one user's batch; see the module docstring."""

    __slots__ = ("audience_cfg", "cfg", "audience", "lists", "resting")

    def __init__(
        self,
        audience_cfg: AudienceConfig,
        cfg: RecommendConfig,
        audience: AudienceLogic | None = None,
        lists: ListLogic | None = None,
    ) -> None:
        self.audience_cfg = audience_cfg
        self.cfg = cfg
        self.audience = audience
        self.lists = lists
        # Set by the audience part at an update that says the customer's session is over;
        # the lists part then lets the scores rest (ListLogic.rest) once it has the records.
        self.resting = False

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        return self.lists_part(self.audience_part(values)), self.discarded()

    def audience_part(self, values: list[Any]) -> list[Any]:
        """Run the audience part over the updates among ``values``; return its records, the
        other values (answers, triggers) in their places, for :meth:`lists_part`."""
        records: list[Any] = []
        for value in values:
            if type(value) is _UPDATE:
                if value.cause in _AT_REST_CAUSES or value.kind == "final":
                    self.resting = True
                audience = self.audience
                if audience is None:
                    audience = self.audience = AudienceLogic(self.audience_cfg, AudienceState())
                out, discard = audience.on_item(value)
                records.extend(out)
                if discard:
                    self.audience = None
            else:
                records.append(value)
        return records

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        # Neither part sets a timer today; kept so that one added to the audience part still fires.
        if self.audience is None:
            return [], self.discarded()
        out, discard = self.audience.on_notify()
        if discard:
            self.audience = None
        return self.lists_part(list(out)), self.discarded()

    def notify_at(self) -> datetime | None:
        return None if self.audience is None else self.audience.notify_at()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        out = self.lists_part(self.audience_eof())
        out.extend(self.lists_eof())
        return out, self.discarded()

    def audience_eof(self) -> list[Any]:
        """Give the audience part the end of input; return its records, for :meth:`lists_part`."""
        if self.audience is None:
            return []
        said, discard = self.audience.on_eof()
        if discard:
            self.audience = None
        return list(said)

    def lists_eof(self) -> list[Any]:
        """Give the lists part the end of input (after :meth:`audience_eof`); return what it emits."""
        if self.lists is None:
            return []
        said, discard = self.lists.on_eof()
        if discard:
            self.lists = None
        return list(said)

    def snapshot(self) -> bytes:
        audience = None if self.audience is None else self.audience.state
        lists = None if self.lists is None else self.lists.state
        return encode_state(AudienceListsState(audience=audience, lists=lists))

    def lists_part(self, records: list[Any]) -> list[Any]:
        """Pass the audience part's records and the answers through the lists part; return what
        the step emits (then let the scores rest if the audience part said so)."""
        out = self._through_lists(records)
        if self.resting:
            self.resting = False
            if self.lists is not None:
                self.lists.rest()
        return out

    def _through_lists(self, records: list[Any]) -> list[Any]:
        if not records:
            return records
        lists = self.lists
        if lists is None:
            said = _without_state(self.cfg, records)
            if said is not None:
                return said  # nothing to hold: the part stays empty, as a discarded one would
            lists = self.lists = ListLogic(self.cfg, ListState())
        out, discard = lists.on_batch(records)
        if discard:
            self.lists = None
        return out if type(out) is list else list(out)

    def discarded(self) -> bool:
        """Return whether both parts hold nothing (the key's state is dropped)."""
        return self.audience is None and self.lists is None


#: The causes of an update that says the customer's session is over (or time passed): the
#: list's scores can rest until the next answer (``ListLogic.rest``).
_AT_REST_CAUSES: Final = frozenset({"session_close", "time"})


def _without_state(cfg: RecommendConfig, records: list[Any]) -> list[Any] | None:
    """Return what the lists part emits for ``records`` of a customer it holds nothing for, when
    none of them would leave it something to hold (else None: a :class:`ListLogic` takes them).

    Most records reaching the lists part are segment changes of customers with no list (no
    product activity yet): each gets the empty list, as a new logic would give it before being
    discarded, without building one.
    """
    for value in records:
        kind = type(value)
        if kind is _SEGMENT_CHANGE:
            continue  # the common record, looked for first: none of the kinds below
        if kind is list or kind is _ANSWER or isinstance(value, _TOMBSTONE):
            return None
        if isinstance(value, _PROFILE_ROW) and value.final or isinstance(value, _TRIGGER) and value.rule in cfg.payloads:
            return None
    return [with_list(value, []) if type(value) is _SEGMENT_CHANGE else value for value in records]


def _resume(audience_cfg: AudienceConfig, cfg: RecommendConfig, data: bytes) -> AudienceListsLogic:
    try:
        state = decode_state(data, AudienceListsState)
    except StateSerializationError:
        # A snapshot of the audience step from before the lists joined it.
        return AudienceListsLogic(audience_cfg, cfg, AudienceLogic(audience_cfg, decode_state(data, AudienceState)))
    audience = None if state.audience is None else AudienceLogic(audience_cfg, state.audience)
    lists = None if state.lists is None else ListLogic(cfg, state.lists)
    return AudienceListsLogic(audience_cfg, cfg, audience, lists)


def build_audience_lists(audience_cfg: AudienceConfig, cfg: RecommendConfig) -> Any:
    """Return the builder of the audience step with the customers' lists."""
    return lambda resume: (
        AudienceListsLogic(audience_cfg, cfg) if resume is None else _resume(audience_cfg, cfg, resume)
    )
