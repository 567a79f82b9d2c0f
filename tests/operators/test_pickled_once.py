"""PickledOnce: the value crosses intact, pickled once however often the item is pickled."""

from __future__ import annotations

import pickle

from operators.pickled_once import PickledOnce


class _Counted:
    """Counts how often pickle reduces it (shared across copies through a class attribute)."""

    reduced = 0

    def __init__(self, payload: list[float]) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[object, tuple[list[float]]]:
        _Counted.reduced += 1
        return _Counted, (self.payload,)


def test_the_value_is_pickled_once_however_often_the_item_is() -> None:
    _Counted.reduced = 0
    once = PickledOnce([_Counted([1.0, 2.5]), _Counted([3.0])])
    # As timely does with an item that crosses: dumps to measure, dumps to write, keyed as a pair.
    measured = pickle.dumps(("models-1", once))
    written = pickle.dumps(("models-1", once))
    assert measured == written
    assert _Counted.reduced == 2  # the two elements, once each, not twice
    key, back = pickle.loads(written)
    assert key == "models-1"
    assert isinstance(back, PickledOnce)
    assert [c.payload for c in back.value] == [[1.0, 2.5], [3.0]]


def test_a_value_that_never_crosses_is_never_pickled() -> None:
    _Counted.reduced = 0
    once = PickledOnce([_Counted([1.0])])
    assert once.value[0].payload == [1.0]
    assert _Counted.reduced == 0


def test_the_received_copy_pickles_again_as_the_original() -> None:
    once = PickledOnce({"a": (1, 2.0, "x")})
    again = pickle.loads(pickle.dumps(once))
    assert pickle.loads(pickle.dumps(again)).value == {"a": (1, 2.0, "x")}
