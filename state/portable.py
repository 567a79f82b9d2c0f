"""Pickle the compiled modules' dataclasses in one form, whichever build runs.

The per-user step's state classes live in the modules mypyc compiles
(``[tool.journeyflow] compiled`` in pyproject.toml). Left to themselves, the two
builds pickle them differently: a mypyc native class as its class and a dict of
its attributes, a slotted dataclass from source as its class and ``(None,
slots)``; neither build reads the other's snapshot (``JOURNEYFLOW_PURE``
switched, or ``make install`` replacing a source fallback, lost a worker's
recovery). :func:`register_compiled_states` gives every dataclass of those
modules one reducer (``copyreg``): a call of :func:`rebuild` with

- ``layout``: ``"module:Class:digest"``, the digest being 8 hex characters of
  the field names in declared order (one string object per class, so a pickle
  holds it once and refers to it after: a few bytes per further instance);
- ``values``: the field values in declared order (no field names: smaller
  than either build's own form).

:func:`rebuild` makes the instance without ``__init__`` (no defaults recomputed,
no ``__post_init__``), which works for mypyc's native classes and plain
dataclasses alike. A snapshot whose class has since gained fields at the end
gets those fields' defaults; one whose fields were renamed, removed or reordered
raises :class:`~journeyflow.errors.StateSerializationError` naming the class.

Snapshots written before this form (by either build) name the classes
themselves; :func:`loads` reads them in both builds (:class:`_Unpickler`).

A class whose layout changed on purpose lists its former layouts in
:data:`~state.upgrades.UPGRADES`: a snapshot of one (in either form) is read by the upgrade's
``convert``, given the former fields' values by name, so a live worker's
snapshots written before the change still resume.
"""

from __future__ import annotations

import copyreg
import dataclasses
import functools
import hashlib
import importlib
import io
import operator
import pickle
from collections.abc import Callable
from typing import Any

from journeyflow.compiled import listed_modules
from journeyflow.errors import StateSerializationError
from state.upgrades import UPGRADES, Upgrade
from state.upgrades import find_upgrade as _upgrade

__all__ = ["UPGRADES", "Upgrade", "dumps", "loads", "portable_classes", "rebuild", "reducer", "register_compiled_states"]

_MISSING = dataclasses.MISSING


def _digest(names: tuple[str, ...]) -> str:
    return hashlib.sha256(",".join(names).encode()).hexdigest()[:8]


def _layout(cls: type) -> str:
    names = tuple(f.name for f in dataclasses.fields(cls))
    return f"{cls.__module__}:{cls.__qualname__}:{_digest(names)}"


def reducer(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    names = [f.name for f in dataclasses.fields(cls)]
    layout = _layout(cls)
    # attrgetter reads every field in C; with one name it returns the value alone.
    get = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (rebuild, (layout, (get(obj),)))
    return lambda obj: (rebuild, (layout, get(obj)))


def _own_reduce(cls: type) -> bool:
    # A class that chose how it pickles keeps it (none of the compiled ones does; the
    # __getstate__/__setstate__ that mypyc and dataclasses add are what this replaces).
    return "__reduce__" in vars(cls) or "__reduce_ex__" in vars(cls)


def portable_classes(module_names: list[str]) -> list[type]:
    """Return the dataclasses defined in ``module_names`` (imported), in module order."""
    found: list[type] = []
    for name in module_names:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == name and dataclasses.is_dataclass(value):
                if not _own_reduce(value):
                    found.append(value)
    return found


@functools.cache
def register_compiled_states() -> frozenset[type]:
    """Register the reducer of every dataclass in the compiled modules; return them.

    Once per process (cached): every snapshot encodes through :func:`dumps`,
    which calls this first. Without pyproject.toml (an installed image, which
    runs from source and has no build to switch to) nothing is registered and
    snapshots keep pickle's own form, which :func:`loads` reads in both builds.
    """
    try:
        modules = listed_modules()
    except OSError:
        return frozenset()
    classes = portable_classes(modules)
    for cls in classes:
        copyreg.pickle(cls, reducer(cls))
    return frozenset(classes)


@functools.cache
def _resolve(layout: str) -> tuple[Any, tuple[dataclasses.Field[Any], ...], int, Callable[[tuple[Any, ...]], Any] | None]:
    """Return the class a layout names, its fields, how many values the snapshot holds, and
    the converter that reads them when the layout is a former one (:data:`UPGRADES`)."""
    module_name, qualname, digest = layout.split(":")
    try:
        cls: Any = functools.reduce(getattr, qualname.split("."), importlib.import_module(module_name))
    except (ImportError, AttributeError) as ex:
        msg = f"snapshot class must exist; got {module_name}.{qualname} instead, which is gone ({ex})"
        raise StateSerializationError(msg) from ex
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        msg = f"snapshot class {module_name}.{qualname} must be a dataclass; got {cls!r} instead"
        raise StateSerializationError(msg)
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    if _digest(names) == digest:
        held = len(names)
    else:
        # Fields added at the end since the snapshot: it holds the ones before them.
        held = next(
            (n for n in range(len(names) - 1, 0, -1)
             if _digest(names[:n]) == digest and all(_has_default(f) for f in fields[n:])),
            0,
        )
    if held:
        versioned = _upgrade(cls, lambda up: up.below > 0)
        if versioned is None:
            return cls, fields, held, None
        # The field names of then, a field's type changed since: older versions are converted.
        _, upgrade, below = versioned
        names_held = names[:held]
        at = names_held.index("version")
        return cls, fields, held, lambda values: (
            upgrade(dict(zip(names_held, values))) if values[at] < below else _make(cls, fields, values)
        )
    by_layout = _upgrade(cls, lambda up: up.below == 0 and _digest(up.fields) == digest)
    if by_layout is not None:
        former, convert, _ = by_layout
        return cls, fields, len(former), lambda values: convert(dict(zip(former, values)))
    msg = (
        f"snapshot of {module_name}.{qualname} must have the fields {', '.join(names)} "
        f"(or fewer, the rest with defaults); got another layout (digest {digest}) instead: "
        "fields renamed, removed or reordered since it was written"
    )
    raise StateSerializationError(msg)


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not _MISSING or f.default_factory is not _MISSING


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default if f.default is not _MISSING else f.default_factory()  # type: ignore[misc,operator]


def _make(cls: Any, fields: tuple[dataclasses.Field[Any], ...], values: tuple[Any, ...]) -> Any:
    obj = cls.__new__(cls)
    setattr_ = object.__setattr__  # frozen dataclasses refuse setattr
    for f, value in zip(fields, values):
        setattr_(obj, f.name, value)
    for f in fields[len(values) :]:
        setattr_(obj, f.name, _default(f))
    return obj


def rebuild(layout: str, values: tuple[Any, ...]) -> Any:
    """Return the instance a portable pickle describes (pickle calls this)."""
    cls, fields, held, convert = _resolve(layout)
    if len(values) != held:
        msg = f"snapshot of {layout} must hold {held} field values; got {len(values)} instead"
        raise StateSerializationError(msg)
    if convert is not None:
        return convert(values)
    return _make(cls, fields, values)


def dumps(state: Any) -> bytes:
    """Return ``state`` pickled (protocol 5), the compiled modules' dataclasses in the portable form."""
    register_compiled_states()
    return pickle.dumps(state, protocol=5)


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


def loads(data: bytes) -> Any:
    """Return the state pickled in ``data``: portable, or the old form of either build."""
    portable = register_compiled_states()
    if not portable:
        return pickle.loads(data)
    unpickler = _Unpickler(data, portable)
    state = unpickler.load()
    # Only an old snapshot names a portable class (and pays for the walk).
    return _Convert().value(state) if unpickler.stand_ins else state


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
        missing = [f.name for f in fields if f.name not in values and not _has_default(f)]
        if unknown or missing:
            msg = (
                f"snapshot of {cls.__module__}.{cls.__qualname__} must have its fields; got "
                f"unknown {sorted(unknown)} and missing {missing} instead"
            )
            raise StateSerializationError(msg)
        obj = cls.__new__(cls)
        self.done[id(legacy)] = obj
        for f in fields:
            value = self.value(values[f.name]) if f.name in values else _default(f)
            object.__setattr__(obj, f.name, value)
        return obj
