"""Encode and decode keyed state for bytewax snapshots; fail loudly.

Layout: every snapshot is ``pickle`` (protocol 5) of the state dataclass.
The dataclasses of the compiled modules pickle in the form
:mod:`state.portable` registers (class path, a digest of the field names, the
field values in order), the same bytes from the mypyc build and from source,
so a worker resumes after a change of build; the state classes carry a ``version`` field so a
future layout change can be detected when an old snapshot is read back.
Renaming a state class or its module makes old snapshots unreadable: that
raises :class:`~journeyflow.errors.StateSerializationError` at resume rather
than silently starting from empty state.

Snapshots are bytes, so they are immutable by construction, which settles
bytewax's requirement that a snapshot must not change after it is taken.
"""

from __future__ import annotations

import pickle
from typing import Any, TypeVar

from journeyflow.errors import StateSerializationError
from state import portable  # the compiled modules' classes pickle alike in both builds

__all__ = ["encode_state", "decode_state"]

T = TypeVar("T")


def encode_state(state: Any) -> bytes:
    """Return ``state`` as snapshot bytes.

    >>> decode_state(encode_state({"a": 1}), dict)
    {'a': 1}
    """
    try:
        return portable.dumps(state)
    except (pickle.PicklingError, TypeError, AttributeError) as ex:
        msg = f"cannot encode state of type {type(state).__name__}: {ex}"
        raise StateSerializationError(msg) from ex


def decode_state(data: bytes, expected: type[T]) -> T:
    """Return the state encoded in ``data``, checking it is an ``expected``.

    >>> decode_state(b"junk", dict)
    Traceback (most recent call last):
    ...
    journeyflow.errors.StateSerializationError: cannot decode dict snapshot of 4 bytes: ...
    """
    try:
        state = portable.loads(data)
    except Exception as ex:  # pickle raises many types on corrupt input
        msg = f"cannot decode {expected.__name__} snapshot of {len(data)} bytes: {ex}"
        raise StateSerializationError(msg) from ex
    if not isinstance(state, expected):
        msg = f"snapshot must decode to {expected.__name__}; got {type(state).__name__} instead"
        raise StateSerializationError(msg)
    return state
