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
from typing import Generic, TypeVar

__all__ = ["PickledOnce"]

T = TypeVar("T")


class PickledOnce(Generic[T]):
    """``value``, pickled at most once however often the item holding it is pickled.

    The value must not change once wrapped (the kept bytes would be stale):
    the wrapper is made as the value leaves its step, and only read after.
    """

    __slots__ = ("value", "_pickled")

    def __init__(self, value: T) -> None:
        self.value = value
        self._pickled: bytes | None = None

    def __reduce__(self) -> tuple[object, tuple[bytes]]:
        if self._pickled is None:
            self._pickled = pickle.dumps(self.value, protocol=pickle.HIGHEST_PROTOCOL)
        return _unpickled, (self._pickled,)

    def __repr__(self) -> str:
        return f"PickledOnce({self.value!r})"


def _unpickled(data: bytes) -> PickledOnce[object]:
    # Module level: pickle refers to it by name on the receiving side.
    return PickledOnce(pickle.loads(data))
