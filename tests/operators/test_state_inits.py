"""The per-user state classes' written-out ``__init__`` (compiled by mypyc: see operators/journey_state.py).

Each takes the fields in order with the fields' own defaults, and a field with a
factory gets a new value of its own in every instance (or the one value its factory
always returns: a profile's shared empties); so ``__init__`` and the
dataclass fields (which snapshots read, ``state/portable.py``) cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from array import array
from typing import Any

import pytest

from operators.dedup import DedupState
from operators.journey_state import JourneyState
from operators.profiles import Profile
from operators.sessions import Session

#: Each class and the arguments of its fields without a default.
_CLASSES: list[tuple[type, dict[str, Any]]] = [
    (JourneyState, {}),
    (Profile, {"first_seen_ms": 1, "last_seen_ms": 2}),
    (Session, {"start_ms": 1, "end_ms": 2}),
    (DedupState, {}),
]


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@pytest.mark.parametrize(("cls", "required"), _CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_defaults_are_the_fields(cls: type, required: dict[str, Any]) -> None:
    made, other = cls(**required), cls(**required)
    for f in dataclasses.fields(cls):
        expected = required[f.name] if f.name in required else _default(f)
        assert getattr(made, f.name) == expected, f.name
        assert type(getattr(made, f.name)) is type(expected), f.name
        if f.default_factory is not dataclasses.MISSING:
            if f.default_factory() is f.default_factory():
                # A profile's rarely filled fields share one empty until written (operators.profiles).
                assert getattr(made, f.name) is getattr(other, f.name) is _default(f), f.name
            else:
                assert getattr(made, f.name) is not getattr(other, f.name), f.name  # one of its own


@pytest.mark.parametrize(("cls", "required"), _CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_every_field_by_name_and_position(cls: type, required: dict[str, Any]) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    sample = cls(**required)
    values = {name: getattr(sample, name) for name in names}
    by_name, by_position = cls(**values), cls(*[values[n] for n in names])
    for name in names:
        for made in (by_name, by_position):
            value = getattr(made, name)
            assert value == values[name] and type(value) is type(values[name]), name
            if isinstance(value, (list, dict, set, array)):
                assert value is values[name], name  # the container given, not a new one
    assert by_name == sample == by_position


@pytest.mark.parametrize(("cls", "required"), _CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_made_without_arguments_as_snapshots_are_decoded(cls: type, required: dict[str, Any]) -> None:
    # state/portable.py makes the instance with cls.__new__(cls), then sets every field;
    # compiled by mypyc, __new__ runs __init__, so it must take no arguments.
    made = cls.__new__(cls)
    for f in dataclasses.fields(cls):
        object.__setattr__(made, f.name, getattr(cls(**required), f.name))
    assert made == cls(**required)
