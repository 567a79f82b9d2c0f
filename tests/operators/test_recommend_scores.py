"""The recommender's scores (operators/recommend_scores.py): popularity rankings, a customer's blend and list."""

from __future__ import annotations

import random
from array import array

import pytest

from operators import recommend as rec
from operators.recommend import Found, RecommendConfig
from operators.recommend_scores import Ranking, blend, rank, ranking_add, ranking_top


@pytest.mark.parametrize("size", [40, 12])
def test_a_popular_view_is_the_ranking_as_it_stands(size: int) -> None:
    # ranking_top caches the first EVAL_DEPTH places until one of them changes (a count
    # that moves a product among the lower places keeps it): it must always give what a
    # fresh view of the ranking gives, and the ranking must be the best by score.
    rng = random.Random(5)
    ranking = Ranking([], {})
    counts: dict[str, float] = {}
    kept = 0
    for step in range(20_000):
        product = f"p{int(rng.paretovariate(1.2)) % 90}"
        counts[product] = counts.get(product, 0.0) + 1.0 + step / 1000  # scores only grow
        ranking_add(ranking, product, counts[product], size)
        before = ranking.view
        assert ranking_top(ranking) == tuple(ranking.top[: rec.EVAL_DEPTH])
        kept += before is not None
        assert all(ranking.scores[a] >= ranking.scores[b] for a, b in zip(ranking.top, ranking.top[1:]))
    assert kept > 1000  # the cache is used, not rebuilt at every count


def test_the_blend_is_decayed_scores_scaled_up_and_trimmed_to_the_best() -> None:
    # Forward decay scales the new successors up instead of the old ones down: each score over
    # the scale must be the decayed score, through the rebases when the scale grows large.
    cfg = RecommendConfig(decay=0.25, candidates=100)
    rng = random.Random(3)
    products: list[str] = []
    values: array[float] = array("d")
    scale = 1.0
    decayed: dict[str, float] = {}
    rebased = 0
    for step in range(400):
        successors = tuple(rng.sample([f"p{i}" for i in range(8)], 3))
        weights = tuple(float(rng.randint(1, 5)) for _ in successors)
        found = Found(successors, weights, sum(weights))
        before = scale
        products, values, scale = blend(products, values, scale, cfg, found, step == 0)
        rebased += scale < before
        decayed = {p: s * cfg.decay for p, s in decayed.items()}
        for p, w in zip(successors, weights):
            decayed[p] = decayed.get(p, 0.0) + w / found.total
        # The candidates in the order first scored, each once, beside their scores.
        assert products == list(decayed) and len(values) == len(products)
        assert all(v / scale == pytest.approx(decayed[p], rel=1e-9, abs=1e-300) for p, v in zip(products, values))
    assert rebased  # the rebase was exercised
    fresh = blend(products, values, scale, cfg, found, True)
    assert fresh == (list(successors), array("d", [w / found.total for w in weights]), 1.0)
    # Past twice the candidates, the best candidates are kept, best first.
    trim = RecommendConfig(decay=0.5, candidates=2)
    kept = blend(["a", "b", "c", "d"], array("d", [5.0, 1.0, 4.0, 0.5]), 1.0, trim, Found(("e",), (1.0,), 1.0), False)
    assert kept[:2] == (["a", "c"], array("d", [5.0, 4.0]))


def test_a_candidate_is_found_by_equality_when_not_the_same_object() -> None:
    # Ids are interned where they enter, so a candidate is mostly found by identity; an equal
    # id from elsewhere (a resumed snapshot, another process's answer) must find it too.
    cfg = RecommendConfig(decay=0.5, candidates=10)
    products, values, _ = blend(["".join(["p", "1"])], array("d", [1.0]), 1.0, cfg, Found(("p1",), (1.0,), 1.0), False)
    assert products == ["p1"] and values == array("d", [3.0])


def test_the_list_is_scored_first_then_filled_each_product_once() -> None:
    products, values = ["a", "b", "c"], array("d", [0.2, 0.9, 0.2])
    # Ties keep the order scored; what is left out is neither ranked nor filled.
    assert rank(products, values, ("b",), (("d", "a", "e"), ("e", "f")), 5) == ("a", "c", "d", "e", "f")
    assert rank([], array("d"), frozenset(), (("x", "y"),), 1) == ("x",)
    many = tuple(f"f{i}" for i in range(30))
    assert rank(products, values, (), (many,)) == ("b", "a", "c", *many[: rec.EVAL_DEPTH - 3])
