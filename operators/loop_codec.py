"""The loop step's snapshot (:mod:`operators.loop`): open attributions as pre-encoded rows.

bytewax asks the loop's one key for its state at every epoch. Pickled whole,
the state costs a Python call per open trigger (the dataclass reducer) and per
goal event kept: 1.4 MB and about 30 ms after 7,500 triggers in their window,
paid every ``[recovery] snapshot_s``. Here each open trigger's immutable part
is encoded once, as one short JSON row, when it opens; a snapshot copies the
rows of the triggers still open and adds what changes in a small pickled
header: the counters, tallies, bandits, moves, and which open triggers
converted. Goal events kept for the reorder margin are encoded per user, again
only when that user's list changed. The rows are columns by position, and
what repeats from trigger to trigger (rule, arm, payload keys) is a number
into a table of shapes in the header.

Layout: ``MAGIC``; three lengths (``>III``: header, open rows, recent blocks);
the header, a pickle (:func:`state.serde.encode_state`) of the
:class:`~operators.loop_state.LoopState` without its four large fields, the
JSON of the converted open triggers' values, the shapes and the goal events'
field names, and the JSON of ``recent_order``;
the rows of ``state.open`` in its order (user by user, each user's list in
order), one line each; one line per user of ``state.recent``, in its order.
Decoding rebuilds the same objects in the same order (the ``due`` heap from
the rows), so a resumed step makes the same choices and emits the same
records, and its next snapshot is the same bytes. A snapshot without
``MAGIC`` is the former layout (the state pickled whole): it still decodes,
and its rows are built at load.

This bounds the cost per epoch, not the size: the rows still grow with the
triggers in their window (see the README, "The loop's state and the live
tail").
"""

from __future__ import annotations

import heapq
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import orjson

from journeyflow.errors import StateSerializationError
from operators.goals import GoalEvent
from operators.loop_state import LoopState, _Open
from state.serde import decode_state, encode_state

__all__ = ["MAGIC", "LoopRows", "encode", "decode"]

MAGIC = b"JFLOOP2\n"
_LENGTHS = struct.Struct(">III")

# A row: [window end - time, sequence, trigger id, shape, user fired for, time, cause, payload values],
# a shape being (rule, arm, payload keys): the same few for every trigger, written once in the header.
Shape = tuple[str, str, tuple[str, ...]]


@dataclass(slots=True)
class LoopRows:
    """The encoded rows of the state's open triggers and recent goal events (derived, not state).

    The loop step calls :meth:`opened`, :meth:`matured` and
    :meth:`goal_events_changed` where it changes ``open`` and ``recent``.
    """

    open: dict[str, bytes] = field(default_factory=dict)
    """Trigger id -> its row (newline-terminated)."""
    recent: dict[str, bytes] = field(default_factory=dict)
    """User -> the JSON of their recent goal events; missing: to encode at the next snapshot."""
    shapes: dict[Shape, int] = field(default_factory=dict)
    """(rule, arm, payload keys) -> its number in the rows."""
    field_keys: dict[tuple[str, ...], int] = field(default_factory=dict)
    """A goal event's field names -> their number in the blocks."""

    def opened(self, due_ms: int, seq: int, followed: _Open) -> None:
        """Encode a trigger that just opened (``followed.user`` is still the user it was fired for)."""
        self.open[followed.trigger_id] = self._row(due_ms, seq, followed.user, followed)

    def matured(self, trigger_id: str) -> None:
        del self.open[trigger_id]

    def goal_events_changed(self, user: str) -> None:
        self.recent.pop(user, None)

    def _row(self, due_ms: int, seq: int, user: str, f: _Open) -> bytes:
        # ``user``: the one the trigger was fired for, which its ``due`` entry names (``moved``: the one it follows now).
        shape = (f.rule, f.arm, tuple(f.payload))
        number = self.shapes.get(shape)
        if number is None:
            number = self.shapes[shape] = len(self.shapes)
        values = list(f.payload.values())
        return orjson.dumps([due_ms - f.ts_ms, seq, f.trigger_id, number, user, f.ts_ms, f.cause_event_id, values]) + b"\n"

    def block(self, user: str, events: list[GoalEvent]) -> bytes:
        """Return ``user``'s goal events as one line (the user is the same for all: written once)."""
        encoded = []
        for e in events:
            keys = tuple(e.fields)
            number = self.field_keys.get(keys)
            if number is None:
                number = self.field_keys[keys] = len(self.field_keys)
            encoded.append((e.ts_ms, e.event_id, e.type, e.value, number, list(e.fields.values())))
        return orjson.dumps([user, encoded]) + b"\n"


def encode(state: LoopState, rows: LoopRows) -> bytes:
    """Return the snapshot of ``state`` (see the module docstring)."""
    converted: dict[str, float] = {}
    pieces: list[bytes] = []
    for followed_list in state.open.values():
        for f in followed_list:
            pieces.append(rows.open[f.trigger_id])
            if f.converted:
                converted[f.trigger_id] = f.value
    open_len = sum(map(len, pieces))
    recent_len = 0
    for user, events in state.recent.items():
        block = rows.recent.get(user)
        if block is None:
            block = rows.recent[user] = rows.block(user, events)
        pieces.append(block)
        recent_len += len(block)
    small = replace(state, open={}, due=[], recent={}, recent_order=deque())
    order = orjson.dumps(list(state.recent_order))
    # Only the state pickled, the rest JSON: pickle shares equal strings that are one object (a trigger id
    # in ``moved`` and in ``converted``, say), which they need not be in a decoded state; so the
    # snapshot of a resumed step would not be the bytes it resumed from.
    tables = orjson.dumps([converted, list(rows.shapes), list(rows.field_keys)])
    header = encode_state((small, tables, order))
    # One copy of the rows, into the snapshot.
    return b"".join([MAGIC, _LENGTHS.pack(len(header), open_len, recent_len), header, *pieces])


def decode(data: bytes) -> tuple[LoopState, LoopRows]:
    """Return the state in ``data`` and its rows; a snapshot of the former layout too."""
    if not data.startswith(MAGIC):
        former = decode_state(data, LoopState)
        return former, _rows_of(former)
    try:
        at = len(MAGIC) + _LENGTHS.size
        header_len, open_len, recent_len = _LENGTHS.unpack(data[len(MAGIC) : at])
        if len(data) != at + header_len + open_len + recent_len:
            msg = f"its sections' lengths must add up to {len(data) - at} bytes; got {header_len + open_len + recent_len} instead"
            raise ValueError(msg)
        small, tables, order = decode_state(data[at : at + header_len], tuple)
        converted, shape_list, key_list = orjson.loads(tables)
        shapes: list[Shape] = [(rule, arm, tuple(keys)) for rule, arm, keys in shape_list]
        field_keys = [tuple(keys) for keys in key_list]
        at += header_len
        if not isinstance(small, LoopState):
            msg = f"its header must hold a LoopState; got {type(small).__name__} instead"
            raise TypeError(msg)
        state = small
        rows = LoopRows(
            shapes={shape: i for i, shape in enumerate(shapes)}, field_keys={keys: i for i, keys in enumerate(field_keys)}
        )
        for line in _lines(data[at : at + open_len]):
            window, seq, trigger_id, number, user, ts_ms, cause, values = orjson.loads(line)
            rule, arm, keys = shapes[number]
            now = state.moved.get(trigger_id, user)
            followed = _Open(trigger_id, rule, arm, now, ts_ms, cause, dict(zip(keys, values)))
            if trigger_id in converted:
                followed.converted, followed.value = True, converted[trigger_id]
            state.open.setdefault(now, []).append(followed)
            state.due.append((ts_ms + window, seq, user, trigger_id))
            rows.open[trigger_id] = line + b"\n"
        heapq.heapify(state.due)
        at += open_len
        for block in _lines(data[at : at + recent_len]):
            user, events = orjson.loads(block)
            state.recent[user] = [
                GoalEvent(user, ts_ms, event_id, kind, value, dict(zip(field_keys[number], values)))
                for ts_ms, event_id, kind, value, number, values in events
            ]
            rows.recent[user] = block + b"\n"
        state.recent_order.extend((ts, user) for ts, user in orjson.loads(order))
    except (ValueError, TypeError, KeyError, IndexError, struct.error) as ex:
        msg = f"cannot decode the loop's snapshot of {len(data)} bytes: {ex}"
        raise StateSerializationError(msg) from ex
    return state, rows


def _lines(section: bytes) -> Iterable[bytes]:
    return section.split(b"\n")[:-1]  # every row ends with a newline


def _rows_of(state: LoopState) -> LoopRows:
    """Encode the rows of a state decoded from the former layout (its ``due`` heap names each trigger's first user)."""
    rows = LoopRows()
    by_id = {f.trigger_id: f for followed_list in state.open.values() for f in followed_list}
    for due_ms, seq, user, trigger_id in sorted(state.due, key=lambda entry: entry[1]):  # as they opened
        rows.open[trigger_id] = rows._row(due_ms, seq, user, by_id[trigger_id])
    return rows
