"""``SegmentChange`` and ``ProfileRow`` as plain classes (journeyflow/records.py): what they were as frozen dataclasses.

The classes below are the dataclasses they replaced, kept here as the reference:
the same fields in the same order with the same defaults, equality, repr and
wire bytes, and a pickle round trip (a cluster's steps pickle them).
"""

from __future__ import annotations

import inspect
import pickle
from dataclasses import dataclass
from typing import Any

import pytest

from journeyflow.records import SNAPSHOT_FIELDS, ProfileRow, SegmentChange


@dataclass(frozen=True, slots=True)
class SegmentChangeBefore:
    user_id: str
    ts_ms: int
    entered: tuple[str, ...]
    exited: tuple[str, ...]
    segments: tuple[str, ...]
    cause_event_id: str | None
    profile: dict[str, Any]
    cause: str = "event"
    fields: tuple[str, ...] = SNAPSHOT_FIELDS


@dataclass(frozen=True, slots=True)
class ProfileRowBefore:
    user_id: str
    ts_ms: int
    fields: dict[str, Any]
    segments: tuple[str, ...] | None = None
    final: bool = False


_PAIRS = [
    (SegmentChange, SegmentChangeBefore, ("u1", 5, ("a",), ("b",), ("a", "c"), "e1", {"engagement": 0.5})),
    (ProfileRow, ProfileRowBefore, ("u1", 5, {"cart_value": 1.5})),
]


@pytest.mark.parametrize(("cls", "before", "required"), _PAIRS, ids=lambda c: getattr(c, "__name__", ""))
def test_the_fields_defaults_equality_and_repr_are_the_dataclass_ones(cls: type, before: type, required: tuple) -> None:
    assert inspect.signature(cls.__init__).parameters.keys() == inspect.signature(before.__init__).parameters.keys()
    made, old = cls(*required), before(*required)
    assert cls.__slots__ == before.__slots__
    for name in cls.__slots__:
        assert getattr(made, name) == getattr(old, name), name
    assert repr(made) == repr(old).replace("Before(", "(")
    assert made == cls(*required) and made != cls(*required[:-1], {"other": 1})
    assert made != old  # (another class, as between two dataclasses)
    assert pickle.loads(pickle.dumps(made)) == made
    with pytest.raises(TypeError):
        hash(made)


def test_the_wire_bytes_are_the_same_as_before() -> None:
    fields = {"engagement": 0.25, "recency_days": None, "cart": {"products": ["p"], "value": 2.0}}
    change = SegmentChange("u1", 1_700_000_000_123, ("a",), (), ("a",), None, fields, "time", ("engagement",))
    assert orjson_of(change) == {
        "kind": "segment_change", "user_id": "u1", "ts": "2023-11-14T22:13:20.123Z", "entered": ["a"],
        "exited": [], "segments": ["a"], "cause_event_id": None, "cause": "time", "profile": {"engagement": 0.25},
    }
    row = ProfileRow("u1", 1_700_000_000_123, fields, ("a",), final=True)
    assert orjson_of(row) == {"user_id": "u1", **fields, "updated_at": "2023-11-14T22:13:20.123Z", "segments": ["a"]}


def orjson_of(record: Any) -> dict[str, Any]:
    import orjson

    return orjson.loads(record.to_json())
