"""A replay cluster's batched hops: the catalog's parcels, their hand-out, the loop's lists of inputs."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulLogic

from flows.loop import _for_loop, _for_loop_apart
from journeyflow.records import IdentityMerge
from journeyflow.step_records import EndOfInput, UserUpdate
from operators.pickled_once import EachOf, HandOut, Parcel, PickledOnce
from operators.catalog_batches import BatchedCatalog, RecAskBatch
from operators.recommend import Found, RecAnswer, RecAsk, RecommendConfig
from operators.recommend_steps import build_catalog


def _asks(users: list[str], start: int, count: int) -> list[RecAsk]:
    return [
        RecAsk(users[n % len(users)], n * 1000, "view", f"p{(n * 7) % 23}", "c1", (f"p{(n * 3) % 23}",), ())
        for n in range(start, start + count)
    ]


def _crossed(value: Any) -> Any:
    # As timely does with an item that crosses to another process: dumps twice, loads once.
    pickle.dumps(value)
    return pickle.loads(pickle.dumps(value))


def test_the_catalog_answers_each_worker_in_one_parcel_as_it_answers_customer_by_customer() -> None:
    cfg = RecommendConfig()
    plain = build_catalog(cfg)(None)
    batched = BatchedCatalog(build_catalog(cfg)(None))
    for start in range(0, 600, 150):
        first, second = _asks(["a1", "a2", "a3"], start, 80), _asks(["b1", "b2"], start + 80, 70)
        expected = {answers[0].ask.user: answers for answers in plain.on_batch([first, second])[0]}
        values = [_crossed(PickledOnce(RecAskBatch("a1", first))), PickledOnce(RecAskBatch("b2", second))]
        parcels, discard = batched.on_batch(values)
        parcels = [_crossed(parcel) for parcel in parcels]
        assert not discard
        assert [parcel.reply_to for parcel in parcels] == ["a1", "b2"]
        handed, discard = HandOut().on_batch(parcels)
        assert discard
        handed = list(handed)
        assert [user for user, _ in handed] == ["a1", "a2", "a3", "b1", "b2"]
        assert dict(handed) == expected
        # The crossed parcel's answers, pickled packed, are the same named tuples again.
        assert {(type(a), type(a.ask), type(a.successors)) for _, answers in handed for a in answers} == {
            (RecAnswer, RecAsk, Found)
        }
    assert batched.snapshot() is None


def test_a_parcel_hands_out_its_pairs_in_order() -> None:
    parcels = [Parcel("k1", PickledOnce([("k1", 1), ("k2", 2)])), _crossed(Parcel("k3", PickledOnce([("k3", 3)])))]
    assert list(HandOut().on_batch(parcels)[0]) == [("k1", 1), ("k2", 2), ("k3", 3)]


class _Recorder(StatefulLogic[Any, Any, Any]):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_item(self, value: Any) -> tuple[Iterable[Any], bool]:
        self.seen.append(value)
        return [f"said {value}"], StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        return ["report"], StatefulLogic.RETAIN

    def snapshot(self) -> Any:
        return len(self.seen)


def test_each_of_gives_the_inner_logic_every_value_in_turn() -> None:
    inner = _Recorder()
    each = EachOf(inner)
    assert list(each.on_item(PickledOnce([1, 2]))[0]) == ["said 1", "said 2"]
    assert list(each.on_item(_crossed(PickledOnce([3])))[0]) == ["said 3"]
    assert inner.seen == [1, 2, 3]
    assert list(each.on_eof()[0]) == ["report"]
    assert each.snapshot() == 3


def _final(user: str, ts_ms: int) -> tuple[str, UserUpdate]:
    return (user, UserUpdate(user, ts_ms, "final", "end", None, (), {}))


def test_the_loop_hears_a_batch_in_one_list_with_its_latest_end_of_input() -> None:
    updates = [_final("u1", 5), ("u9", UserUpdate("u9", 12, "update", "event", "e1", (), {})), _final("u2", 9), _final("u3", 7)]
    [(key, heard)] = _for_loop_apart(updates)
    assert key == "loop" and heard.value == [EndOfInput(9, "u2")]
    assert max(value.ts_ms for _, value in _for_loop(updates)) == 9
    assert _for_loop_apart([]) == []
    assert _for_loop_apart(updates[1:2]) == []


def test_the_loop_hears_the_same_values_in_the_same_order_batched_or_not() -> None:
    merges = [(f"d{n}", IdentityMerge(f"c{n}", f"d{n}", n * 10, None)) for n in range(5)] + [_final("c1", 99)]
    [(_, heard)] = _for_loop_apart(merges)
    assert heard.value == [value for _, value in _for_loop(merges)]
