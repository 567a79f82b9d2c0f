"""The online hit rate (operators/recommend_hits.py): a viewed product's place in the list, the sums."""

from __future__ import annotations

import random

from operators import recommend as rec
from operators.recommend import RecommendConfig
from operators.recommend_hits import ONLINE, POPULARITY, add_hits, hit_sums, list_position
from operators.recommend_lists import ListLogic, ListState
from operators.recommend_scores import rank


def test_the_online_position_is_the_place_in_the_ranked_list() -> None:
    # The online hit rate places a viewed product without ranking the list; the place must be
    # the one the ranked list gives, ties, left-out products and fill included, whether the
    # lists step has ranked the list already or not.
    rng = random.Random(7)
    products = [f"p{i}" for i in range(40)]
    checked = 0
    for _ in range(3000):
        scored = rng.sample(products, rng.randint(0, 30))
        # Few distinct scores, so that ties (kept in the order scored) are common.
        scores = {p: float(rng.randint(1, 4)) for p in scored}
        exclude = tuple(rng.choice(products) for _ in range(rng.randint(0, 4)))
        fill = tuple(tuple(rng.sample(products, rng.randint(0, 25))) for _ in range(2))
        logic = ListLogic(RecommendConfig(), ListState(scores=scores, exclude=exclude, fill=fill))
        for product in rng.sample(products, 5):
            expected = rec.position_of(rank(scores, exclude, fill), product)
            assert list_position(scores, exclude, fill, product) == expected
            assert logic._position(product) == expected
            checked += expected is not None
        assert logic.ranked == rank(scores, exclude, fill)
        assert all(logic._position(p) == rec.position_of(logic.ranked, p) for p in products)
    assert checked > 1000  # the positions found are not all misses


def test_hits_add_up_at_10_and_20_and_a_miss_adds_nothing() -> None:
    assert add_hits(add_hits(None, ONLINE, None), ONLINE, 21) is None
    assert hit_sums(None) == {}
    sums = None
    for position in (1, 4, 15):
        sums = add_hits(sums, ONLINE, position)
    hits = hit_sums(sums)
    assert list(hits) == ["online"]  # a list without a hit is not reported
    hits = hit_sums(add_hits(sums, POPULARITY, 20))
    assert hits["online"] == {"hit_10": 2.0, "rr_10": 1.25, "hit_20": 3.0, "rr_20": 1.25 + 1 / 15}
    assert hits["popularity"] == {"hit_10": 0.0, "rr_10": 0.0, "hit_20": 1.0, "rr_20": 0.05}
    # The sums are the per-target figures added up.
    assert hits["online"]["rr_20"] == sum(rec.hit_figures(p)["rr_20"] for p in (1, 4, 15))
