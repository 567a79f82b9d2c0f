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
  (:class:`~journeyflow.records.Handoff`), an
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

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import bytewax.operators as op
from bytewax.operators import KeyedStream, StatefulBatchLogic, StatefulLogic

from journeyflow.events import IDENTITY_TYPES, Event
from journeyflow.records import IdentityMerge
from journeyflow.step_records import Expect, Forward, Handoff, Tick
from operators.journey import JourneyConfig, JourneyLogic, JourneyState
from state.serde import decode_state, encode_state

__all__ = [
    "DeviceConfig",
    "DeviceState",
    "DeviceLogic",
    "to_device",
    "device_key",
    "in_input_order",
]



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
    if isinstance(item, Event):
        if item.user_id is None:
            return item.user == item.anonymous_id
        return item.type in IDENTITY_TYPES
    return isinstance(item, Tick) and item.device


def device_key(item: Any) -> str:
    """Return the device step's key for an item :func:`to_device` sends there."""
    if isinstance(item, Event) and item.anonymous_id is not None:
        return item.anonymous_id
    return item.user  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DeviceConfig:
    """The journey logic an unlinked device runs, and how long a link lasts."""

    journey: JourneyConfig
    link_idle_ms: int

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
        if isinstance(value, Tick):
            if self.journey is not None:
                return self._journey_says(self.journey.on_item(value))
            # A linked device's customer hears the time on its own key (the
            # replay follows links): here only the link's release is due.
            idle = state.linked_to is None or value.ts_ms - state.seen_ms > self.cfg.link_idle_ms
            return [], StatefulLogic.DISCARD if idle else StatefulLogic.RETAIN
        event: Event = value
        if event.type in IDENTITY_TYPES:
            return self._link(event), StatefulLogic.RETAIN
        if state.linked_to is not None and event.ts_ms - state.seen_ms > self.cfg.link_idle_ms:
            # Silent for too long: the link is forgotten, the visitor is new.
            state.linked_to = None
        if state.linked_to is not None:
            self._seen(event.ts_ms)
            return [Forward(state.linked_to, event._replace(user=state.linked_to))], StatefulLogic.RETAIN
        if self.journey is None:
            self.journey = JourneyLogic(self.cfg.journey, JourneyState())
        return self._journey_says(self.journey.on_item(event))

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        if self.state.linked_to is not None:
            # Only the link's release is ever due for a linked device.
            return [], StatefulLogic.DISCARD
        if self.journey is None:
            return [], StatefulLogic.DISCARD
        return self._journey_says(self.journey.on_notify())

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self.journey is None:
            return [], StatefulLogic.RETAIN
        return self._journey_says(self.journey.on_eof())

    def notify_at(self) -> datetime | None:
        state = self.state
        if state.linked_to is not None:
            if not self.cfg.journey.timers:
                return None
            due_ms = state.seen_ms + state.offset_ms + self.cfg.link_idle_ms
            return datetime.fromtimestamp(due_ms / 1000, timezone.utc)
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
            return [Forward(customer, event)]
        out: list[Any] = []
        handed: JourneyState | None = None
        if self.journey is not None:
            handed, said = self.journey.hand_off(event)
            out.extend(said)
            self.journey = None
        state.linked_to = customer
        out.append(IdentityMerge(customer, event.anonymous_id, event.ts_ms, event.event_id))  # type: ignore[arg-type]
        out.append(Forward(customer, Handoff(event.anonymous_id, handed, event)))
        return out

    def _seen(self, ts_ms: int) -> None:
        state = self.state
        if ts_ms >= state.seen_ms:
            state.seen_ms = ts_ms
            if self.cfg.journey.timers:
                state.offset_ms = self.cfg.journey.now_ms() - ts_ms


def _position(item: Any) -> int:
    if isinstance(item, Handoff):
        return item.event.seq  # type: ignore[no-any-return]
    return getattr(item, "seq", 0)  # type: ignore[no-any-return]


class _InOrder(StatefulBatchLogic[Any, Any, bytes]):
    """Apply one key's items in input order, one by one (as ``stateful`` would).

    With ``placeholders`` (a replay), items that arrive together are sorted
    by position, and each item that comes through the device step (a login or
    its handoff) has an :class:`~journeyflow.records.Expect` among the key's
    own items: the items after it wait (``held``) until that item is here, and
    an item that comes before its placeholder waits in ``early``. So the order
    does not depend on which path, or which worker, was faster. What waits is
    not in snapshots: only replays, which do not recover, send placeholders.
    Live, each path's items keep their arrival order and the two paths are
    interleaved by event time (:func:`_interleaved`).
    """

    def __init__(
        self, builder: Callable[[bytes | None], StatefulLogic[Any, Any, bytes]], resume: bytes | None, placeholders: bool
    ) -> None:
        self.builder = builder
        self.placeholders = placeholders
        self.logic: StatefulLogic[Any, Any, bytes] | None = builder(resume)
        self.held: deque[Any] = deque()
        """From the first placeholder whose item has not come, everything after it."""
        self.early: dict[int, Any] = {}
        """Items of the device step that came before their placeholder, by position."""

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        if not self.placeholders:
            for value in _interleaved(values):
                self._apply(value, out)
            return out, self.logic is None
        values.sort(key=_position)
        for value in values:
            if _expected(value):
                self.early[_position(value)] = value
                self._drain(out)
            elif self.held:
                self.held.append(value)
            elif isinstance(value, Expect):
                self.held.append(value)
                self._drain(out)
            else:
                # Nothing waits ahead of it: the common case.
                self._apply(value, out)
        return out, self.logic is None and not self.held and not self.early

    def _drain(self, out: list[Any]) -> None:
        while self.held:
            head = self.held[0]
            if isinstance(head, Expect):
                if head.seq not in self.early:
                    return
                head = self.early.pop(head.seq)
            self.held.popleft()
            self._apply(head, out)

    def _apply(self, value: Any, out: list[Any]) -> None:
        if self.logic is None:
            self.logic = self.builder(None)
        said, discard = self.logic.on_item(value)
        out.extend(said)
        if discard:
            self.logic = None

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        if self.logic is None:
            return [], not self.held and not self.early
        return self.logic.on_notify()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        # Whatever still waits is applied in order: a placeholder whose item
        # never came is skipped.
        out: list[Any] = []
        waiting = [v for v in self.held if not isinstance(v, Expect)] + list(self.early.values())
        self.held, self.early = deque(), {}
        for value in sorted(waiting, key=_position):
            self._apply(value, out)
        if self.logic is None:
            return out, True
        said, discard = self.logic.on_eof()
        out.extend(said)
        return out, discard

    def notify_at(self) -> datetime | None:
        return None if self.logic is None else self.logic.notify_at()

    def snapshot(self) -> bytes:
        # Only a replay waits with the logic discarded; its snapshots are never read.
        return (self.logic or self.builder(None)).snapshot()


def _interleaved(values: list[Any]) -> Iterable[Any]:
    """Live: each path's items in arrival order, the two paths interleaved by event time.

    A customer's own events and what its devices forward arrive grouped by
    path; merging the two by event time applies a login's handoff before the
    customer's next event. Within a path nothing is reordered (sorting what
    happens to arrive together would tie the outcome to where batches split).
    """
    own = [v for v in values if not _through_device(v)]
    if len(own) == len(values) or not own:
        return values
    forwarded = [v for v in values if _through_device(v)]
    return heapq.merge(own, forwarded, key=_event_time)


def _event_time(value: Any) -> int:
    return value.event.ts_ms if isinstance(value, Handoff) else value.ts_ms  # type: ignore[no-any-return]


def _expected(value: Any) -> bool:
    """Whether a replay sent a placeholder for ``value``: a login, or its handoff (the replay
    sends a linked device's other events straight to the customer)."""
    return isinstance(value, Handoff) or (isinstance(value, Event) and value.type in IDENTITY_TYPES)


def _through_device(value: Any) -> bool:
    """Whether ``value`` came through the device step: a handoff, a login, a linked device's event."""
    return isinstance(value, Handoff) or (
        isinstance(value, Event) and (value.type in IDENTITY_TYPES or value.user_id is None)
    )


def in_input_order(
    step_id: str,
    up: KeyedStream[Any],
    builder: Callable[[bytes | None], StatefulLogic[Any, Any, bytes]],
    *,
    placeholders: bool,
) -> KeyedStream[Any]:
    """Like ``op.stateful``, but a key's items are applied in input order.

    The customer step hears of a customer along two paths (its own items,
    and what its devices send through one more step), and bytewax hands a
    stateful step each key's items grouped by where they came from, not in
    input order. In a replay, sorting what arrives together by ``seq`` (the
    input position) and waiting at each placeholder for the item it stands
    for restores the order: a login's handed-over state is merged before the
    customer's next event, whichever path or worker was faster.
    """
    return op.stateful_batch(step_id, up, lambda resume: _InOrder(builder, resume, placeholders))
