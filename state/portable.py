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
themselves; :func:`loads` reads them in both builds (:mod:`state.old_forms`).

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
import operator
import pickle
from collections.abc import Callable
from typing import Any

from journeyflow.compiled import listed_modules
from journeyflow.errors import StateSerializationError
from state.old_forms import default_of, has_default, load_any_form
from state.upgrades import UPGRADES, Upgrade
from state.upgrades import find_upgrade as _upgrade

__all__ = ["UPGRADES", "Upgrade", "dumps", "loads", "portable_classes", "rebuild", "reducer", "register_compiled_states"]

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
             if _digest(names[:n]) == digest and all(has_default(f) for f in fields[n:])),
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


def _make(cls: Any, fields: tuple[dataclasses.Field[Any], ...], values: tuple[Any, ...]) -> Any:
    obj = cls.__new__(cls)
    setattr_ = object.__setattr__  # frozen dataclasses refuse setattr
    for f, value in zip(fields, values):
        setattr_(obj, f.name, value)
    for f in fields[len(values) :]:
        setattr_(obj, f.name, default_of(f))
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


def loads(data: bytes) -> Any:
    """Return the state pickled in ``data``: portable, or the old form of either build."""
    portable = register_compiled_states()
    if not portable:
        return pickle.loads(data)
    return load_any_form(data, portable)
