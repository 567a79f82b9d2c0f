"""A customer's answers back in time order (operators/recommend_order.py)."""

from __future__ import annotations

from journeyflow.records import SegmentChange
from operators.recommend import NOTHING_FOUND, RecAnswer, RecAsk
from operators.recommend_order import answers_in_time_order, records_in_time_order


def _answer(ts_ms: int, product: str) -> RecAnswer:
    return RecAnswer(RecAsk("u", ts_ms, "view", product, None, (), ()), NOTHING_FOUND, (), (), None)


def test_a_list_in_time_order_is_kept_and_one_out_of_it_sorted_stably() -> None:
    a, b, c, also_b = _answer(1, "a"), _answer(2, "b"), _answer(3, "c"), _answer(2, "b2")
    ordered = [a, b, c]
    assert answers_in_time_order(ordered) is ordered  # no copy of the common case
    assert answers_in_time_order([c, b, also_b, a]) == [a, b, also_b, c]  # ties keep their order


def test_answers_take_the_places_answers_hold_among_the_records() -> None:
    first, second, third = _answer(1_000, "a"), _answer(2_000, "b"), _answer(3_000, "c")
    change = SegmentChange("u", 3_500, ("s",), (), ("s",), "e", {}, "event", ())
    # Lists spread out, answers in time order; the segment change keeps its place.
    assert records_in_time_order([[third, first], change, [second]]) == [first, second, change, third]
    assert records_in_time_order([change, second, [first]]) == [change, first, second]
    in_order = [[first], change, [second, third]]
    assert records_in_time_order(in_order) == [first, change, second, third]
