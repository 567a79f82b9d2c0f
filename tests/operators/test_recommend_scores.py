"""The recommender's scores (operators/recommend_scores.py): popularity rankings, a customer's blend and list."""

from __future__ import annotations

import random

import pytest

from operators import recommend as rec
from operators.recommend import Found, RecommendConfig
from operators.recommend_scores import Ranking, blend, rank, ranked_list, ranking_add, ranking_top


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
    scores: dict[str, float] = {}
    scale = 1.0
    decayed: dict[str, float] = {}
    rebased = 0
    for step in range(400):
        products = tuple(rng.sample([f"p{i}" for i in range(8)], 3))
        weights = tuple(float(rng.randint(1, 5)) for _ in products)
        found = Found(products, weights, sum(weights))
        before = scale
        scores, scale = blend(scores, scale, cfg, found, step == 0)
        rebased += scale < before
        decayed = {p: s * cfg.decay for p, s in decayed.items()}
        for p, w in zip(products, weights):
            decayed[p] = decayed.get(p, 0.0) + w / found.total
        assert scores.keys() == decayed.keys()
        assert all(scores[p] / scale == pytest.approx(decayed[p], rel=1e-9, abs=1e-300) for p in scores)
    assert rebased  # the rebase was exercised
    assert blend(scores, scale, cfg, found, True) == ({p: w / found.total for p, w in zip(products, weights)}, 1.0)
    # Past twice the candidates, the best candidates are kept.
    trim = RecommendConfig(decay=0.5, candidates=2)
    kept, _ = blend({"a": 5.0, "b": 1.0, "c": 4.0, "d": 0.5}, 1.0, trim, Found(("e",), (1.0,), 1.0), False)
    assert kept == {"a": 5.0, "c": 4.0}


def test_the_list_is_scored_first_then_filled_each_product_once() -> None:
    scores = {"a": 0.2, "b": 0.9, "c": 0.2}
    # Ties keep the order scored; what is left out is neither ranked nor filled.
    assert rank(scores, ("b",), (("d", "a", "e"), ("e", "f")), 5) == ("a", "c", "d", "e", "f")
    assert rank({}, frozenset(), (("x", "y"),), 1) == ("x",)
    many = tuple(f"f{i}" for i in range(30))
    assert rank(scores, (), (many,)) == ("b", "a", "c", *many[: rec.EVAL_DEPTH - 3])


def _sorted_rank(scores: dict[str, float], exclude: tuple[str, ...], fill: tuple[tuple[str, ...], ...], depth: int) -> list[str]:
    """The list as ranked before recs19: every score sorted (stable), then filtered, then filled."""
    ranked = [p for p in sorted(scores, key=scores.__getitem__, reverse=True) if p not in exclude]
    for products in fill:
        for product in products:
            if len(ranked) < depth and product not in ranked and product not in exclude:
                ranked.append(product)
    return ranked[:depth]


def test_the_list_and_the_trim_are_a_stable_sort_s_best() -> None:
    # rank and ranked_list look for what is left out only as deep as the list goes, and
    # blend's trim keeps the best: the same products in the same order as a stable sort of
    # every score, ties (many, from few distinct scores) in the order scored, whatever is
    # left out and however deep.
    rng = random.Random(19)
    for _ in range(3000):
        names = [f"p{i}" for i in range(rng.randint(0, 70))]
        scores = {p: float(rng.randint(1, 6)) / rng.choice([1, 8]) for p in rng.sample(names, len(names))}
        exclude = tuple(rng.choice([*names, "x"]) for _ in range(rng.randint(0, 4))) if names else ()
        offered = [*names, "f1", "f2", "f3"]
        fill = tuple(tuple(rng.sample(offered, rng.randint(0, min(5, len(offered))))) for _ in range(2))
        depth = rng.randint(0, 25)
        assert ranked_list(scores, exclude, fill, depth) == _sorted_rank(scores, exclude, fill, depth)
        assert rank(scores, exclude, fill) == tuple(_sorted_rank(scores, exclude, fill, rec.EVAL_DEPTH))
        candidates = rng.randint(0, 30)
        kept, _ = blend(dict(scores), 1.0, RecommendConfig(candidates=candidates), Found((), (), 1.0), False)
        if len(scores) > 2 * candidates:
            best = sorted(scores, key=scores.__getitem__, reverse=True)[:candidates]
            assert list(kept.items()) == [(p, scores[p]) for p in best]
        else:
            assert kept == scores


def test_a_held_score_is_the_object_stored() -> None:
    # The catalog boxes a count once and hands the object to both rankings (ranking_add's held).
    ranking = Ranking([], {})
    held = float("2.5")  # (not the literal's object)
    ranking_add(ranking, "a", 2.5, 40, held)
    ranking_add(ranking, "b", 1.0, 40)
    assert ranking.scores["a"] is held and ranking.top == ["a", "b"]


def _former_ranking_add(top: list[str], scores: dict[str, float], product: str, score: float, size: int) -> None:
    # ranking_add before its places list (recs21): every score above a moving product read
    # from the dict.
    if product in scores:
        i = top.index(product)
    elif len(top) < size:
        top.append(product)
        i = len(top) - 1
    elif score > scores[top[-1]]:
        del scores[top[-1]]
        top[-1] = product
        i = size - 1
    else:
        return
    scores[product] = score
    while i > 0 and scores[top[i - 1]] < score:
        top[i - 1], top[i] = top[i], top[i - 1]
        i -= 1


@pytest.mark.parametrize("size", [40, 12, 1])
def test_the_ranking_is_what_it_was_with_scores_read_from_the_dict(size: int) -> None:
    # The places list mirrors the scores of ``top``: the ranking, ties included (few distinct
    # steps, so equal scores are common), must be what reading the dict gave, also when the
    # places are forgotten (a resumed snapshot, a rebase, a dropped product) and made again.
    rng = random.Random(11)
    ranking = Ranking([], {})
    top: list[str] = []
    scores: dict[str, float] = {}
    for step in range(20_000):
        product = f"p{int(rng.paretovariate(1.1)) % 120}"
        score = scores.get(product, ranking.scores.get(product, 0.0)) + rng.choice((0.5, 1.0, 1.0, 2.0))
        ranking_add(ranking, product, score, size)
        _former_ranking_add(top, scores, product, score, size)
        assert ranking.top == top and ranking.scores == scores
        assert ranking.places == [scores[p] for p in top]
        if step % 997 == 0:
            ranking.places = None
