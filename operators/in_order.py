"""The customer step's order: a key's items applied in input order (:func:`in_input_order`).

A customer hears of itself along two paths: its own items, and what its
devices send through the device step (:mod:`operators.identity`). bytewax
hands a stateful step each key's items grouped by where they came from;
this wrapper around the per-user logic restores the input order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from bytewax.operators import KeyedStream, StatefulBatchLogic, StatefulLogic

from journeyflow.events import IDENTITY_TYPES, Event
from journeyflow.step_records import Expect, Finish, Handoff
from operators.unsaved import stateful_batch

__all__ = ["in_input_order"]

# What every item reads from modules that are not compiled, held as statics: compiled, a
# name imported from such a module is looked up in this module's globals dict at every use
# (about 120 instructions each).
_EVENT: Final = Event
_IDENTITY_TYPES: Final = IDENTITY_TYPES
_HANDOFF: Final = Handoff
_EXPECT: Final = Expect
_FINISH: Final = Finish


def _position(item: Any) -> int:
    if isinstance(item, _HANDOFF):
        return item.event.seq  # type: ignore[no-any-return]
    return getattr(item, "seq", 0)  # type: ignore[no-any-return]


class _InOrder(StatefulBatchLogic[Any, Any, bytes]):
    """Apply one key's items in input order, one by one (as ``stateful`` would).

    With ``placeholders`` (a replay), items that arrive together are sorted
    by position, and each item that comes through the device step (a login or
    its handoff) has an :class:`~journeyflow.step_records.Expect` among the key's
    own items: the items after it wait (``held``) until that item is here, and
    an item that comes before its placeholder waits in ``early``. So the order
    does not depend on which path, or which worker, was faster. What waits is
    not in snapshots: only replays, which do not recover, send placeholders.
    Live, each path's items keep their arrival order and the two paths are
    interleaved by event time (:func:`_interleaved`).
    """

    def __init__(
        self,
        builder: Callable[[bytes | None], StatefulLogic[Any, Any, bytes]],
        resume: bytes | None,
        placeholders: bool,
    ) -> None:
        self.builder = builder
        self.placeholders = placeholders
        self.logic: StatefulLogic[Any, Any, bytes] | None = builder(resume)
        self.held: deque[Any] | None = None
        """From the first placeholder whose item has not come, everything after it.

        ``None`` while nothing waits (almost always): an empty deque is about
        600 bytes, kept by every customer key for the whole replay."""
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
            elif isinstance(value, _EXPECT):
                self.held = deque((value,))
                self._drain(out)
            else:
                # Nothing waits ahead of it: the common case.
                self._apply(value, out)
        return out, self.logic is None and not self.held and not self.early

    def _drain(self, out: list[Any]) -> None:
        held = self.held
        if held is None:
            return
        while held:
            head = held[0]
            if isinstance(head, _EXPECT):
                if head.seq not in self.early:
                    return
                head = self.early.pop(head.seq)
            held.popleft()
            self._apply(head, out)
        self.held = None

    def _apply(self, value: Any, out: list[Any]) -> None:
        if type(value) is _FINISH:
            # A replay's end of this key's input, in its place after every other item.
            self._finish(out)
            return
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
        out: list[Any] = []
        if self.placeholders:
            # A replay: nothing reads the key after its end of input (no snapshot, no
            # resume), and bytewax drops logics only after every key's end of input.
            # Letting go now frees this user's state before the next user's final
            # update is built, so the peak is not the held state plus every final update.
            self._finish(out)
            return out, True
        said, discard = self._eof(out)
        out.extend(said)
        return out, discard

    def _finish(self, out: list[Any]) -> None:
        """Do what the key's end of input does (a replay's :class:`Finish` or bytewax's), then let the logic go."""
        said, _ = self._eof(out)
        out.extend(said)
        self.logic = None

    def _eof(self, out: list[Any]) -> tuple[Iterable[Any], bool]:
        # Whatever still waits is applied in order: a placeholder whose item
        # never came is skipped (a Finish among them finishes the key there).
        held = self.held
        waiting = [v for v in held or () if not isinstance(v, _EXPECT)] + list(self.early.values())
        if held:
            held.clear()  # (emptied, not only dropped: a _drain may be reading it, if a Finish was held)
        self.held, self.early = None, {}
        for value in sorted(waiting, key=_position):
            self._apply(value, out)
        if self.logic is None:
            return [], True
        return self.logic.on_eof()

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
    return value.event.ts_ms if isinstance(value, _HANDOFF) else value.ts_ms  # type: ignore[no-any-return]


def _expected(value: Any) -> bool:
    """Whether a replay sent a placeholder for ``value``: a login, or its handoff (the replay
    sends a linked device's other events straight to the customer)."""
    return isinstance(value, _HANDOFF) or (isinstance(value, _EVENT) and value.type in _IDENTITY_TYPES)


def _through_device(value: Any) -> bool:
    """Whether ``value`` came through the device step: a handoff, a login, a linked device's event."""
    return isinstance(value, _HANDOFF) or (
        isinstance(value, _EVENT) and (value.type in _IDENTITY_TYPES or value.user_id is None)
    )


def in_input_order(
    step_id: str,
    up: KeyedStream[Any],
    builder: Callable[[bytes | None], StatefulLogic[Any, Any, bytes]],
    *,
    placeholders: bool,
    snapshots: bool = True,
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
    return stateful_batch(step_id, up, lambda resume: _InOrder(builder, resume, placeholders), snapshots=snapshots)
