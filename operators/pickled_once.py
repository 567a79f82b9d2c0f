"""A value that crosses between a cluster's processes pickled once, where bytewax pickles it twice.

timely serializes every item that crosses to another process twice: ``Message::push``
measures the item's length with one ``pickle.dumps``, then writes it with another
(native profile of both processes, cluster9 branch). For a large value, such as a
worker's list of model asks for a batch (about 1.3 KB an ask, thousands of asks
at the end of input), the second pass costs as much as the first.

:class:`PickledOnce` pickles its value the first time it is pickled and keeps
the bytes, so the second pass only copies them. An item that stays in its
process is never pickled by bytewax, so it costs nothing there: the wrapper pays
only where the value crosses. The receiving side gets a :class:`PickledOnce`
again, with the value unpickled once.

>>> import pickle
>>> once = PickledOnce([1, 2, 3])
>>> first, second = pickle.dumps(once), pickle.dumps(once)
>>> first == second, pickle.loads(first).value
(True, [1, 2, 3])
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from typing import Any, Generic, NamedTuple, TypeVar

from bytewax.operators import StatefulBatchLogic, StatefulLogic

__all__ = ["PickledOnce", "Packing", "Parcel", "HandOut", "EachOf"]

T = TypeVar("T")


class Packing(NamedTuple):
    """How a value is pickled packed (``pack``) and made again (``unpack``): module-level
    functions, since the receiving side finds ``unpack`` by its name."""

    pack: Callable[[Any], Any]
    unpack: Callable[[Any], Any]


class PickledOnce(Generic[T]):
    """``value``, pickled at most once however often the item holding it is pickled.

    The value must not change once wrapped (the kept bytes would be stale):
    the wrapper is made as the value leaves its step, and only read after.
    With ``packing``, what is pickled is ``packing.pack(value)``, and the
    receiving side gets ``packing.unpack`` of it.
    """

    __slots__ = ("value", "_pickled", "_packing")

    def __init__(self, value: T, packing: Packing | None = None) -> None:
        self.value = value
        self._pickled: bytes | None = None
        self._packing = packing

    def __reduce__(self) -> tuple[object, tuple[Any, ...]]:
        packing = self._packing
        if self._pickled is None:
            packed = self.value if packing is None else packing.pack(self.value)
            self._pickled = pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
        if packing is None:
            return _unpickled, (self._pickled,)
        return _unpacked, (packing.unpack, self._pickled)

    def __repr__(self) -> str:
        return f"PickledOnce({self.value!r})"


def _unpickled(data: bytes) -> PickledOnce[object]:
    # Module level: pickle refers to it by name on the receiving side.
    return PickledOnce(pickle.loads(data))


def _unpacked(unpack: Callable[[Any], Any], data: bytes) -> PickledOnce[object]:
    return PickledOnce(unpack(pickle.loads(data)))


class Parcel(NamedTuple):
    """Items for one worker's keys, sent there as one item keyed by ``reply_to`` (a key of that worker's)."""

    reply_to: str
    items: PickledOnce[list[tuple[str, Any]]]


class HandOut(StatefulBatchLogic[Parcel, tuple[str, Any], None]):
    """Hand a parcel's ``(key, value)`` items out on the worker it was sent to; keeps nothing.

    Its only work is the exchange in front of it: the parcel crosses as one
    item, and its items' keys live on this worker (the sender took
    ``reply_to`` from the same batch), so the keyed step after it takes them
    without another crossing.
    """

    def on_batch(self, values: list[Parcel]) -> tuple[Iterable[tuple[str, Any]], bool]:
        return [pair for parcel in values for pair in parcel.items.value], StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        # Only a replay cluster runs this step, and replays are never resumed.
        return None


class EachOf(StatefulLogic[PickledOnce[list[Any]], Any, Any]):
    """A one-key step fed lists of values (one item per sender and batch): ``inner`` takes each value in turn."""

    def __init__(self, inner: StatefulLogic[Any, Any, Any]) -> None:
        self.inner = inner

    def on_item(self, value: PickledOnce[list[Any]]) -> tuple[Iterable[Any], bool]:
        on_item = self.inner.on_item
        out: list[Any] = []
        for item in value.value:
            said, _ = on_item(item)  # a one-key step's logic keeps its state to the end
            out.extend(said)
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        return self.inner.on_notify()

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        return self.inner.on_eof()

    def notify_at(self) -> Any:
        return self.inner.notify_at()

    def snapshot(self) -> Any:
        return self.inner.snapshot()
