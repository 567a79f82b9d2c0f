"""The recommender's logic, without a dataflow: refresh, exclusions, cold start, erasure, bounds."""

from __future__ import annotations

import pickle
from typing import Any

import orjson
from bytewax.operators import StatefulLogic

from flows.step_configs import journey_config
from flows.recommend import recommend_config
from journeyflow.records import ProfileRow, SegmentChange, Tombstone
from journeyflow.step_records import RawRecord
from operators import recommend as rec
from operators.recommend import Found, RecAnswer, RecAsk, RecommendConfig
from operators.recommend_steps import Chain, ListLogic
from operators.rules import load_rules
from tests.helpers import ShopperEvent, event, settings

MIN = 60_000


class Pipeline:
    """Shoppers' events through the shared in-process chain of the three steps (:class:`Chain`)."""

    def __init__(self, cfg: RecommendConfig) -> None:
        self.cfg = cfg
        self.chain = Chain(cfg)
        self.rows: list[Any] = []

    def do(self, user: str, kind: str, product: str | None, ts_ms: int, *, category: str = "c",
           cart: tuple[str, ...] = (), bought: tuple[str, ...] = ()) -> list[str]:
        self.rows.extend(self.chain.event(ShopperEvent(user, kind, ts_ms, product, category), cart, bought))
        return self.list_of(user)

    def logic(self, user: str) -> ListLogic:
        return self.chain.logic(user)

    def list_of(self, user: str) -> list[str]:
        return self.logic(user).published


def _trained(cfg: RecommendConfig | None = None) -> Pipeline:
    """Ten shoppers look at a then b then c; eight at a then d."""
    pipe = Pipeline(cfg or RecommendConfig(size=3))
    for n in range(10):
        for step, product in enumerate(("a", "b", "c")):
            pipe.do(f"s{n}", "product_view", product, n * 100 * MIN + step * MIN)
    for n in range(8):
        for step, product in enumerate(("a", "d")):
            pipe.do(f"t{n}", "product_view", product, 2000 * MIN + n * 100 * MIN + step * MIN)
    return pipe


def test_a_view_refreshes_the_list_with_what_follows_it() -> None:
    pipe = _trained()
    assert pipe.do("u", "product_view", "a", 10_000 * MIN)[:2] == ["b", "d"]
    # The next view refreshes it: after b comes c; a's other successor stays behind.
    after_b = pipe.do("u", "product_view", "b", 10_001 * MIN)
    assert after_b[0] == "c"
    assert "b" not in after_b


def test_a_new_session_starts_over() -> None:
    pipe = _trained(RecommendConfig(size=3, decay=0.9))
    pipe.do("u", "product_view", "b", 10_000 * MIN)
    later = pipe.do("u", "product_view", "a", 10_000 * MIN + pipe.cfg.session_gap_ms + MIN)
    assert later[:2] == ["b", "d"]  # not c, which only followed the first session's b


def test_what_was_bought_and_what_is_in_the_cart_are_left_out() -> None:
    pipe = _trained()
    assert pipe.do("u", "product_view", "a", 10_000 * MIN, cart=("b",))[0] == "d"
    assert "d" not in pipe.do("u", "purchase", None, 10_001 * MIN, bought=("d",))
    keep_cart = _trained(RecommendConfig(size=3, exclude_cart=False))
    assert keep_cart.do("u", "product_view", "a", 10_000 * MIN, cart=("b",))[0] == "b"


def test_a_first_view_of_an_unknown_product_gets_its_category_then_the_popular_ones() -> None:
    pipe = _trained()
    for n in range(3):
        pipe.do(f"v{n}", "product_view", "shoe-1", 5000 * MIN + n * MIN, category="shoes")
    listed = pipe.do("new", "product_view", "shoe-2", 6000 * MIN, category="shoes")
    assert listed[0] == "shoe-1"
    assert set(listed[1:]) <= {"a", "b", "c", "d"} and len(listed) == 3


def test_a_tombstone_drops_the_list_and_answers_on_their_way_are_ignored() -> None:
    pipe = _trained()
    pipe.do("u", "product_view", "a", 10_000 * MIN)
    logic = pipe.logic("u")
    assert logic.published
    # An answer to the view is still on its way when the erasure arrives.
    stale = RecAnswer(RecAsk("u", 10_000 * MIN, "view", "a", "c", (), ()), Found(("b",), (1.0,), 1.0), ("c",), (), None)
    out, keep = logic.on_item(Tombstone("u", 10_002 * MIN, "e-9"))
    assert any(isinstance(r, Tombstone) for r in out) and keep is StatefulLogic.RETAIN
    assert logic.on_item(stale)[0] == [] and logic.published == []
    change = SegmentChange("u", 10_003 * MIN, ("x",), (), ("x",), None, {"engagement": 0.1})
    assert logic.on_item(change)[0][0].profile["recommendations"] == []
    # At the end of the input nothing is left to keep.
    assert logic.on_eof()[1] is StatefulLogic.DISCARD


def test_a_final_profile_row_waits_for_the_end_of_the_input_and_carries_the_list() -> None:
    pipe = _trained()
    logic = pipe.logic("u")
    assert logic.on_item(ProfileRow("u", 0, {"events_total": 3}, ("x",), final=True))[0] == []
    pipe.do("u", "product_view", "a", 10_000 * MIN)  # arrives after the row: still counted
    rows = [r for r in logic.on_eof()[0] if isinstance(r, ProfileRow)]
    assert rows[0].fields["recommendations"][:2] == ["b", "d"] and rows[0].final


def test_live_the_store_gets_a_row_when_the_list_changes() -> None:
    pipe = _trained(RecommendConfig(size=3, store_rows=True))
    pipe.rows.clear()
    pipe.do("u", "product_view", "a", 10_000 * MIN)
    rows = [r for r in pipe.rows if isinstance(r, ProfileRow)]
    assert rows and rows[-1].fields == {"recommendations": pipe.list_of("u")}


def test_product_state_holds_no_customer_id() -> None:
    pipe = _trained()
    pipe.do("customer-secret-42", "product_view", "a", 10_000 * MIN)
    pipe.do("customer-secret-42", "product_view", "b", 10_001 * MIN)
    assert b"customer-secret-42" not in pipe.chain.catalog.snapshot()
    assert b"customer-secret-42" not in pickle.dumps(pipe.chain.catalog.state)
    assert "a" in pipe.chain.catalog.state.table  # what it does hold: products


def test_memory_is_bounded_by_products_and_neighbours() -> None:
    cfg = RecommendConfig(max_products=10, neighbours=3, max_categories=2)
    pipe = Pipeline(cfg)
    for n in range(200):
        pipe.do(f"s{n % 7}", "product_view", f"p{n % 37}", n * MIN, category=f"k{n % 5}")
    state = pipe.chain.catalog.state
    assert len(state.table) == cfg.max_products  # 37 products seen: the least recently learned forgotten
    assert all(len(node[0]) <= 2 * cfg.neighbours for node in state.table.values())
    assert len(state.popularity.counts) <= cfg.max_products
    assert len(state.popularity.categories) <= cfg.max_categories
    assert len(state.popularity.overall.top) <= cfg.popular


def test_online_hits_are_counted_for_the_list_and_for_popularity() -> None:
    pipe = _trained()
    pipe.do("u", "product_view", "a", 10_000 * MIN)
    pipe.do("u", "product_view", "b", 10_001 * MIN)
    (quality,) = [r for r in pipe.logic("u").on_eof()[0] if isinstance(r, rec.RecQuality)]
    assert quality.evaluated == 1
    assert quality.hits["online"]["hit_10"] == 1.0 and quality.hits["online"]["rr_10"] == 1.0
    assert quality.hits["popularity"]["hit_20"] == 1.0  # b is among the top products too


def _raw(doc: dict[str, Any]) -> RawRecord:
    return RawRecord(orjson.dumps(doc), "events/0@1", doc["user_id"])


def test_the_journey_step_asks_for_consenting_customers_only() -> None:
    cfg = settings()
    journey = journey_config(cfg, load_rules(cfg.rules_path), timers=False).build(None)
    first = journey.on_item(_raw(event("product_view", ts=1_000, product_id="a")))[0]
    second = journey.on_item(_raw(event("product_view", ts=2_000, product_id="b")))[0]
    asks = [r for r in [*first, *second] if isinstance(r, RecAsk)]
    assert [(a.product, a.previous) for a in asks] == [("a", ()), ("b", ("a",))]
    refuse = event("consent", ts=3_000, context={"consent": {"personalization": False, "marketing": False}})
    journey.on_item(_raw(refuse))
    after = journey.on_item(_raw(event("product_view", ts=4_000, product_id="c")))[0]
    assert not [r for r in after if isinstance(r, RecAsk)]


def test_a_forget_clears_the_customers_recent_products() -> None:
    cfg = settings()
    journey = journey_config(cfg, load_rules(cfg.rules_path), timers=False).build(None)
    journey.on_item(_raw(event("product_view", ts=1_000, product_id="a")))
    journey.on_item(_raw(event("forget", ts=2_000)))
    out = journey.on_item(_raw(event("product_view", ts=3_000, product_id="b")))[0]
    assert [a.previous for a in out if isinstance(a, RecAsk)] == [()]


def test_off_means_no_asks_and_no_steps() -> None:
    off = settings(recommendations={"enabled": False})
    assert recommend_config(off) is None
    journey = journey_config(off, load_rules(off.rules_path), timers=False).build(None)
    out = journey.on_item(_raw(event("product_view", ts=1_000, product_id="a")))[0]
    assert not [r for r in out if isinstance(r, RecAsk)]


def test_a_customers_answers_out_of_time_order_are_blended_in_time_order() -> None:
    from operators.recommend_lists import ListState

    def answer(ts_ms: int, product: str, successors: tuple[tuple[str, float], ...]) -> RecAnswer:
        ask = RecAsk("u", ts_ms, "view", product, None, (), ())
        found = Found(tuple(p for p, _ in successors), tuple(w for _, w in successors), 1.0)
        return RecAnswer(ask, found, ("z",), (), None)

    first = answer(1_000, "a", (("b", 1.0),))
    second = answer(2_000, "b", (("c", 1.0),))
    third = answer(3_000, "c", (("d", 0.5), ("a", 0.5)))
    change = SegmentChange("u", 3_500, ("s",), (), ("s",), "e", {}, "event", ())
    in_order = ListLogic(RecommendConfig(), ListState())
    shuffled = ListLogic(RecommendConfig(), ListState())
    (expected,) = in_order.on_batch([[first, second], change, [third]])[0]
    # Answers take the places answers hold, in time order: the change sees the first two.
    (got,) = shuffled.on_batch([[third, first], change, [second]])[0]
    assert got.profile["recommendations"] == expected.profile["recommendations"]
    assert shuffled.state.scores == in_order.state.scores and shuffled.state.evaluated == in_order.state.evaluated
