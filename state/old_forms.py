"""Read snapshots written before the portable form (:mod:`state.portable`), by either build.

They name the compiled modules' classes themselves, pickled as each build
pickles them: a mypyc native class as its class and a dict of its attributes,
a slotted dataclass from source as its class and ``(None, slots)``. While
loading, each such class stands in as a :class:`_Legacy` (which takes any of
those states); :class:`_Convert` then builds the instances field by field,
through an upgrade of :data:`~state.upgrades.UPGRADES` when the fields are a
former layout's. Split from :mod:`state.portable`, which calls
:func:`load_any_form`.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from typing import Any

from journeyflow.errors import StateSerializationError
from state.upgrades import find_upgrade as _upgrade

__all__ = ["load_any_form", "has_default", "default_of"]

_MISSING = dataclasses.MISSING


def has_default(f: dataclasses.Field[Any]) -> bool:
    """Return whether field ``f`` has a default (a value or a factory)."""
    return f.default is not _MISSING or f.default_factory is not _MISSING


def default_of(f: dataclasses.Field[Any]) -> Any:
    """Return field ``f``'s default (a factory called)."""
    return f.default if f.default is not _MISSING else f.default_factory()  # type: ignore[misc,operator]


def load_any_form(data: bytes, portable: frozenset[type]) -> Any:
    """Return the state pickled in ``data``, whose ``portable`` classes may be in an old form."""
    unpickler = _Unpickler(data, portable)
    state = unpickler.load()
    # Only an old snapshot names a portable class (and pays for the walk).
    return _Convert().value(state) if unpickler.stand_ins else state


class _Legacy:
    """Stands in, while loading an old snapshot, for an instance of a portable class."""

    target: type = object

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Unpickler(pickle.Unpickler):
    """Reads old snapshots: their portable classes load as :class:`_Legacy` stand-ins."""

    def __init__(self, data: bytes, portable: frozenset[type]) -> None:
        super().__init__(io.BytesIO(data))
        self.portable = portable
        self.stand_ins: dict[type, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if found not in self.portable:
            return found
        if found not in self.stand_ins:
            self.stand_ins[found] = type(f"_Legacy{name}", (_Legacy,), {"target": found})
        return self.stand_ins[found]


class _Convert:
    """Turns an old snapshot's stand-ins into instances, keeping shared references shared."""

    def __init__(self) -> None:
        self.done: dict[int, Any] = {}

    def value(self, value: Any) -> Any:
        key = id(value)
        if key in self.done:
            return self.done[key]
        if isinstance(value, _Legacy):
            return self._instance(value)
        kind = type(value)
        if kind is list:
            out: Any = []
            self.done[key] = out
            out.extend(self.value(v) for v in value)
            return out
        if kind is dict:
            out = {}
            self.done[key] = out
            for k, v in value.items():
                out[self.value(k)] = self.value(v)
            return out
        if kind in (tuple, set, frozenset):
            out = kind(self.value(v) for v in value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            # An instance of a class outside the compiled modules may hold stand-ins.
            for f in dataclasses.fields(value):
                if hasattr(value, f.name):
                    object.__setattr__(value, f.name, self.value(getattr(value, f.name)))
            out = value
        else:
            out = value
        self.done[key] = out
        return out

    def _instance(self, legacy: _Legacy) -> Any:
        cls: Any = legacy.target
        state = getattr(legacy, "state", None)
        fields = dataclasses.fields(cls)
        # mypyc: {attribute: value}; a slotted dataclass: (None or __dict__, {slot: value});
        # a frozen slotted one: [value in field order].
        values: dict[str, Any] = {}
        if isinstance(state, list):
            values.update(zip((f.name for f in fields), state))
        for part in state if isinstance(state, tuple) else (state,):
            if isinstance(part, dict):
                values.update(part)
        unknown = set(values) - {f.name for f in fields}
        if unknown:
            upgrade = _upgrade(cls, lambda up: up.below == 0 and set(up.fields) == set(values))
        else:
            upgrade = _upgrade(cls, lambda up: 0 < up.below and values.get("version", up.below) < up.below)
        if upgrade is not None:
            obj = upgrade[1]({name: self.value(value) for name, value in values.items()})
            self.done[id(legacy)] = obj
            return obj
        missing = [f.name for f in fields if f.name not in values and not has_default(f)]
        if unknown or missing:
            msg = (
                f"snapshot of {cls.__module__}.{cls.__qualname__} must have its fields; got "
                f"unknown {sorted(unknown)} and missing {missing} instead"
            )
            raise StateSerializationError(msg)
        obj = cls.__new__(cls)
        self.done[id(legacy)] = obj
        for f in fields:
            value = self.value(values[f.name]) if f.name in values else default_of(f)
            object.__setattr__(obj, f.name, value)
        return obj
