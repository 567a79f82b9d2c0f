"""The lists step's state (operators/recommend_lists.py): packed hit sums, and snapshots of the
former layout (version 4: the hit sums as dicts) resumed as they were."""

from __future__ import annotations

import pickle
from array import array
from typing import Any

from operators.recommend import Found, RecAnswer, RecAsk, RecommendConfig
from operators.recommend_lists import ListLogic, ListState, build_lists
from state import portable
from state.serde import encode_state

_V4_FIELDS = ("version", "scores", "scale", "exclude", "fill", "last_ms", "erased_ms", "final", "evaluated", "hits")


class _V4:
    """Pickles as a version-4 ``ListState`` did (the portable form: layout digest and values)."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def __reduce__(self) -> tuple[Any, ...]:
        layout = f"operators.recommend_lists:ListState:{portable._digest(_V4_FIELDS)}"
        return portable.rebuild, (layout, self.values)


def _answer(ts_ms: int, product: str, successors: tuple[str, ...], popular_rank: int | None = None) -> RecAnswer:
    ask = RecAsk("u", ts_ms, "view", product, None, (), ())
    found = Found(successors, tuple(float(i + 1) for i in range(len(successors))), 6.0)
    return RecAnswer(ask, found, ("z", "y"), ("x",), popular_rank)


def test_a_version_4_snapshot_resumes_with_the_same_scores_and_sums() -> None:
    hits = {"popularity": {"hit_10": 1.0, "rr_10": 0.5, "hit_20": 1.0, "rr_20": 0.5}}
    scores = {"c": 0.25, "a": 0.75, "b": 0.25}
    old = pickle.dumps(_V4((4, scores, 2.0, ("a",), (("x",), ("z", "y")), 1_000, None, None, 3, hits)), protocol=5)
    cfg = RecommendConfig()
    resumed = build_lists(cfg)(old)
    packed = ListState(
        scores=dict(scores), scale=2.0, exclude=("a",), fill=(("x",), ("z", "y")), last_ms=1_000, evaluated=3,
        sums=array("d", [0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.5]),
    )
    fresh = ListLogic(cfg, packed)
    state = resumed.state
    assert (state.version, state.scores, state.sums) == (5, packed.scores, packed.sums)
    assert not state.hits  # the former field stays empty
    assert resumed.ranked == fresh.ranked == ("c", "b", "x", "z", "y")  # ties in the order scored
    # Both go on the same: the same answers give the same lists and the same quality.
    answers = [_answer(2_000, "c", ("b", "d")), _answer(3_000, "d", ("e", "a", "b"), popular_rank=1)]
    for logic in (resumed, fresh):
        logic.on_batch([answers])
    assert resumed.ranked == fresh.ranked
    assert resumed.on_eof()[0] == fresh.on_eof()[0]
    # And a snapshot of today's layout resumes as it was.
    again = build_lists(cfg)(encode_state(fresh.state))
    assert (again.state.scores, again.state.sums, again.ranked) == (fresh.state.scores, fresh.state.sums, fresh.ranked)


def test_a_customer_without_payload_rules_holds_no_failed_set() -> None:
    logic = ListLogic(RecommendConfig(), ListState())
    logic.on_batch([[_answer(1_000, "a", ("b",))]])
    assert logic._failed is None
