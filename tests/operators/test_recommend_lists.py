"""The lists step's state (operators/recommend_lists.py): packed hit sums, and snapshots of the
former layout (version 4: the hit sums as dicts) resumed as they were."""

from __future__ import annotations

import pickle
import random
from array import array
from typing import Any

from journeyflow.records import Tombstone
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


def _published_rows(logic: ListLogic, answers: list[RecAnswer], rests: set[int], reads: set[int], rest: bool) -> list[Any]:
    """Feed ``answers`` one batch each; after the batches in ``rests``, rest the list (with
    ``rest``) and snapshot it, and after those in ``reads`` read it (which wakes it); return
    what was seen: rows, snapshots, positions, lists, and the end of input's records."""
    seen: list[Any] = []
    for index, answer in enumerate(answers):
        seen.append(logic.on_batch([[answer]]))
        if index in rests:
            if rest:
                logic.rest()
                assert logic.state.scores == {}
            seen.append(logic.snapshot())
        if index in reads:
            seen.append((logic._position(answer.ask.product or ""), logic.published, logic._has_list()))
    seen.append(logic.on_eof())
    seen.append(logic.snapshot())
    return seen


def test_scores_at_rest_change_nothing_a_customer_sees() -> None:
    # Resting packs the scores; any reader gets the same dict back (order and floats), so
    # positions, lists, rows, snapshots and the end of input are those of a list never rested.
    rng = random.Random(15)
    products = [f"p{n}" for n in range(90)]
    cfg = RecommendConfig(candidates=8, store_rows=True)
    for _ in range(30):
        ts = 0
        answers = []
        for _ in range(rng.randrange(5, 40)):
            ts += rng.choice([1_000, 60_000, 2 * cfg.session_gap_ms])
            successors = tuple(rng.sample(products, rng.randrange(0, 12)))
            answer = _answer(ts, rng.choice(products), successors, rng.choice([None, 0, 3]))
            if rng.random() < 0.25:  # a cart add blends its successors too, without a view's hit
                answer = answer._replace(ask=answer.ask._replace(kind=rng.choice(["cart", "purchase"])))
            answers.append(answer)
        rests = {i for i in range(len(answers)) if rng.random() < 0.5}
        reads = {i for i in range(len(answers)) if rng.random() < 0.3}
        never = _published_rows(ListLogic(cfg, ListState()), answers, rests, reads, rest=False)
        assert _published_rows(ListLogic(cfg, ListState()), answers, rests, reads, rest=True) == never


def test_scores_at_rest_are_packed_and_a_snapshot_holds_the_dict() -> None:
    cfg = RecommendConfig()
    logic = ListLogic(cfg, ListState())
    logic.on_batch([[_answer(1_000, "a", ("b", "c", "d"))]])
    scores = dict(logic.state.scores)
    assert list(scores) == ["b", "c", "d"]
    logic.rest()
    assert logic.state.scores == {} and logic._rest_products == ("b", "c", "d")
    assert logic.on_batch([])[1] == ListLogic.RETAIN  # retained without waking
    assert logic.state.scores == {}
    resumed = build_lists(cfg)(logic.snapshot())
    assert list(resumed.state.scores.items()) == list(scores.items())
    assert logic.state.scores == {}  # still at rest after the snapshot
    assert logic.ranked == resumed.ranked
    assert list(logic.state.scores.items()) == list(scores.items())  # awake again, as it was
    logic.rest()
    other = ListLogic(cfg, ListState())
    other.on_batch([[_answer(1_000, "x", ("y",))]])
    assert list(other.state.scores) == ["y"]  # the shared empty dict was never written
    logic.on_batch([Tombstone("u", 2_000, None, (), "forget", ())])
    assert logic.state.scores == {} and logic._rest_scores is None and logic.ranked == ()


class _Before:
    """Pickles as a version-5 ``ListState`` did before it moved to ``operators.recommend_list_state``."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def __reduce__(self) -> tuple[Any, ...]:
        names = (*_V4_FIELDS, "sums")
        return portable.rebuild, (f"operators.recommend_lists:ListState:{portable._digest(names)}", self.values)


def test_a_snapshot_written_before_the_state_moved_resumes() -> None:
    sums = array("d", [1.0, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    old = pickle.dumps(_Before((5, {"a": 0.5, "b": 0.25}, 1.0, (), (("x",),), 1_000, None, None, 2, {}, sums)), protocol=5)
    resumed = build_lists(RecommendConfig())(old)
    assert (resumed.state.scores, resumed.state.sums, resumed.state.evaluated) == ({"a": 0.5, "b": 0.25}, sums, 2)
    assert resumed.ranked == ("a", "b", "x")
    assert b"operators.recommend_list_state:ListState" in encode_state(resumed.state)  # written under its new name
