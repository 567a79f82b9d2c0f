"""Identity stitching: the per-device step in front of the per-customer step.

Most journeys start anonymous. A keyed dataflow cannot move one key's state to
another key of the same step, so the flow has two steps that run the same
per-user logic (:class:`~operators.journey.JourneyLogic`):

* ``devices``, keyed by ``anonymous_id``, takes every event that carries only
  an anonymous id, every ``login`` / ``identify``, and the replay's ticks. An
  anonymous visitor who is not linked yet is handled here in full (sessions,
  profile, segments, triggers: a device that never identifies keeps a
  profile of its own). At the link (a ``login`` or ``identify`` with
  ``user_id`` U and ``anonymous_id`` A) the device's whole state is handed to U
  (:class:`~journeyflow.step_records.Handoff`), an
  :class:`~journeyflow.records.IdentityMerge` record is published, and the
  device keeps only the link: its later events are forwarded to U.
* ``journey``, keyed by ``user_id``, takes the customers' own events and what
  the devices forward, and merges a handed-over state into the customer's
  (:mod:`operators.merge`).

Every key lives on one worker, the link costs one hop for the events routed
through the device step, and nothing is ever moved sideways. The latest link
of a device wins for its later events; a customer may have many devices.

Memory: a linked device keeps its customer's id and two times; the link is
released (the key discarded) after ``link_idle`` of event time without an
event of the device (live: by the device's clock mapped to system time).
An unlinked device's state is bounded and released as the journey step's is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from bytewax.operators import StatefulLogic

from journeyflow.events import IDENTITY_TYPES, Event
from journeyflow.records import IdentityMerge
from journeyflow.step_records import Finish, Forward, Handoff, Tick
from operators.journey import JourneyConfig, JourneyLogic, JourneyState
from state.serde import decode_state, encode_state

__all__ = [
    "DeviceConfig",
    "DeviceState",
    "DeviceLogic",
    "to_device",
    "device_key",
]

# What every item reads from modules that are not compiled, held as statics: compiled, a
# name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each).
_EVENT: Final = Event
_IDENTITY_TYPES: Final = IDENTITY_TYPES
_TICK: Final = Tick
_FINISH: Final = Finish
_FORWARD: Final = Forward
_HANDOFF: Final = Handoff
_IDENTITY_MERGE: Final = IdentityMerge
_RETAIN: Final = StatefulLogic.RETAIN
_DISCARD: Final = StatefulLogic.DISCARD
_DATETIME: Final = datetime
_UTC: Final = timezone.utc


def to_device(item: Any) -> bool:
    """Return whether ``item`` goes through the device step (else straight to its customer).

    >>> from journeyflow.events import Event
    >>> to_device(Event("e1", "page_view", "a1", 0, "f:1", anonymous_id="a1"))
    True
    >>> to_device(Event("e2", "page_view", "u1", 0, "f:2", user_id="u1", anonymous_id="a1"))
    False
    >>> to_device(Event("e3", "login", "u1", 0, "f:3", user_id="u1", anonymous_id="a1"))
    True

    A replay that follows links itself names the customer as ``user`` of a
    linked device's events: those go straight to the customer.

    >>> to_device(Event("e4", "page_view", "u1", 0, "f:4", anonymous_id="a1"))
    False
    """
    if isinstance(item, _EVENT):
        if item.user_id is None:
            return item.user == item.anonymous_id
        return item.type in _IDENTITY_TYPES
    return isinstance(item, (_TICK, _FINISH)) and item.device


def device_key(item: Any) -> str:
    """Return the device step's key for an item :func:`to_device` sends there."""
    if isinstance(item, _EVENT) and item.anonymous_id is not None:
        return item.anonymous_id
    return item.user  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DeviceConfig:
    """The journey logic an unlinked device runs, and how long a link lasts."""

    journey: JourneyConfig
    link_idle_ms: int
    release_at_eof: bool = False
    """Let go of the visitor's journey once its end of input is told (a replay: nothing
    reads a key after that, and bytewax frees keys only after every key's end)."""

    def __post_init__(self) -> None:
        if self.link_idle_ms <= 0:
            msg = f"identity link_idle must be > 0 ms; got {self.link_idle_ms} instead"
            raise ValueError(msg)

    def build(self, resume_state: bytes | None) -> DeviceLogic:
        """Return the logic for one device, from its snapshot if there is one."""
        state = DeviceState() if resume_state is None else decode_state(resume_state, DeviceState)
        return DeviceLogic(self, state)


@dataclass(slots=True)
class DeviceState:
    """A device: linked to a customer, or an anonymous visitor's journey (or neither)."""

    version: int = 1
    linked_to: str | None = None
    seen_ms: int = 0
    """Latest event time of the device since the link."""
    offset_ms: int = 0
    """System time minus event time at that event (live timers)."""
    journey: JourneyState | None = field(default=None)


class DeviceLogic(StatefulLogic[Any, Any, bytes]):
    """Run an unlinked device's journey, hand it over at the link, forward afterwards."""

    def __init__(self, cfg: DeviceConfig, state: DeviceState) -> None:
        self.cfg = cfg
        self.state = state
        self.journey = None if state.journey is None else JourneyLogic(cfg.journey, state.journey)

    def on_item(self, value: Any) -> tuple[Iterable[Any], bool]:
        state = self.state
        if isinstance(value, _FINISH):
            # A replay's end of this device's input: its end of input now, then the key goes.
            said, _ = self.on_eof()
            self.journey = self.state.journey = None
            return said, _DISCARD
        if isinstance(value, _TICK):
            if self.journey is not None:
                return self._journey_says(self.journey.on_item(value))
            # A linked device's customer hears the time on its own key (the
            # replay follows links): here only the link's release is due.
            idle = state.linked_to is None or value.ts_ms - state.seen_ms > self.cfg.link_idle_ms
            return [], _DISCARD if idle else _RETAIN
        event: Event = value
        if event.type in _IDENTITY_TYPES:
            return self._link(event), _RETAIN
        if state.linked_to is not None and event.ts_ms - state.seen_ms > self.cfg.link_idle_ms:
            # Silent for too long: the link is forgotten, the visitor is new.
            state.linked_to = None
        if state.linked_to is not None:
            self._seen(event.ts_ms)
            return [_FORWARD(state.linked_to, event._replace(user=state.linked_to))], _RETAIN
        if self.journey is None:
            self.journey = JourneyLogic(self.cfg.journey, JourneyState())
        return self._journey_says(self.journey.on_item(event))

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        if self.state.linked_to is not None:
            # Only the link's release is ever due for a linked device.
            return [], _DISCARD
        if self.journey is None:
            return [], _DISCARD
        return self._journey_says(self.journey.on_notify())

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self.journey is None:
            return [], _RETAIN
        said = self._journey_says(self.journey.on_eof())
        if self.cfg.release_at_eof:
            self.journey = self.state.journey = None
            return said[0], _DISCARD
        return said

    def notify_at(self) -> datetime | None:
        state = self.state
        if state.linked_to is not None:
            if not self.cfg.journey.timers:
                return None
            due_ms = state.seen_ms + state.offset_ms + self.cfg.link_idle_ms
            return _DATETIME.fromtimestamp(due_ms / 1000, _UTC)
        return None if self.journey is None else self.journey.notify_at()

    def snapshot(self) -> bytes:
        # The journey may have replaced its state (consent, erasure): read it now.
        self.state.journey = None if self.journey is None else self.journey.state
        return encode_state(self.state)

    # -- internals ---------------------------------------------------------

    def _journey_says(self, said: tuple[Iterable[Any], bool]) -> tuple[Iterable[Any], bool]:
        out, discard = said
        if discard:
            self.journey = None
        return out, discard

    def _link(self, event: Event) -> list[Any]:
        """Link the device to the event's customer; hand over what it knew."""
        state = self.state
        customer: str = event.user_id  # type: ignore[assignment]
        self._seen(event.ts_ms)
        if state.linked_to == customer:
            return [_FORWARD(customer, event)]
        out: list[Any] = []
        handed: JourneyState | None = None
        if self.journey is not None:
            handed, said = self.journey.hand_off(event)
            out.extend(said)
            self.journey = None
        state.linked_to = customer
        out.append(_IDENTITY_MERGE(customer, event.anonymous_id, event.ts_ms, event.event_id))  # type: ignore[arg-type]
        out.append(_FORWARD(customer, _HANDOFF(event.anonymous_id, handed, event)))  # type: ignore[arg-type]
        return out

    def _seen(self, ts_ms: int) -> None:
        state = self.state
        if ts_ms >= state.seen_ms:
            state.seen_ms = ts_ms
            if self.cfg.journey.timers:
                state.offset_ms = self.cfg.journey.now_ms() - ts_ms
