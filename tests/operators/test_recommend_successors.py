"""The successor table (operators/recommend_successors.py): the kept order, cached answers, resume."""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest

from operators import recommend as rec
from operators.recommend import NOTHING_FOUND, RecAsk, RecommendConfig
from operators.recommend_steps import CatalogState, build_catalog
from operators.recommend_successors import forget_answers, learn, successors
from state.serde import decode_state, encode_state


@pytest.mark.parametrize("interned", [False, True])
def test_the_successors_kept_in_order_are_the_ones_a_sort_gives(interned: bool) -> None:
    # learn keeps each product's best successors in order between answers (ties by first
    # learned) instead of sorting at each answer, and an answer reuses the last one's tuples
    # when only the total moved: it must answer what a stable sort gives. Ids as the journey
    # step sends them (interned: found by identity) and as a test or a resumed snapshot may
    # (equal strings, other objects: found by equality).
    rng = random.Random(11)
    cfg = RecommendConfig(neighbours=15)  # prunes past 30 successors: the order is rebuilt then
    table: dict[str, list[Any]] = {}
    checked = 0

    def product(n: int) -> str:
        name = f"p{n}"
        return sys.intern(name) if interned else name

    for _ in range(20_000):
        source = f"s{rng.randrange(3)}"
        # Weights 1, 1/2, 1/3 as the journey step sends them: equal sums (ties) are common.
        learn(table, cfg, source, product(rng.randrange(60)), 1.0 / rng.randint(1, 3))
        node = table[source]
        if node[3] is not None:  # the best successors' weights, kept beside them place by place
            assert node[5] == [node[0][p] for p in node[3]]
        if rng.random() < 0.5:
            asked = f"s{rng.randrange(3)}"  # any product: answers cached across learning
            if asked not in table:
                continue
            weights = table[asked][0]
            expected = sorted(weights.items(), key=lambda kv: kv[1], reverse=True)[: rec.EVAL_DEPTH]
            total = table[asked][1]
            assert successors(table, asked) == (tuple(p for p, _ in expected), tuple(w for _, w in expected), total)
            checked += 1
    assert checked > 5000


def test_a_node_is_bounded_and_the_table_forgets_the_least_recently_learned() -> None:
    cfg = RecommendConfig(neighbours=2, max_products=2)
    table: dict[str, list[Any]] = {}
    for n in range(5):
        learn(table, cfg, "a", f"p{n}", float(n + 1))
    # Past 2 x neighbours the node keeps its best neighbours, and the total is theirs.
    assert list(table["a"][0]) == ["p4", "p3"] and table["a"][1] == 9.0
    assert successors(table, "a") == (("p4", "p3"), (5.0, 4.0), 9.0)
    learn(table, cfg, "b", "a", 1.0)
    learn(table, cfg, "a", "p0", 1.0)  # a is touched again: b is now the least recent
    learn(table, cfg, "c", "a", 1.0)
    assert list(table) == ["a", "c"]
    assert successors(table, "b") is NOTHING_FOUND


def test_forgotten_answers_are_made_again_the_same() -> None:
    cfg = RecommendConfig()
    table: dict[str, list[Any]] = {}
    learn(table, cfg, "a", "b", 1.0)
    learn(table, cfg, "a", "c", 2.0)
    before = successors(table, "a")
    assert successors(table, "a") is before  # cached while nothing was learned
    forget_answers(table)
    after = successors(table, "a")
    assert after == before and after is not before


@pytest.mark.parametrize("entries", [4, 5])
def test_a_resumed_catalog_answers_as_the_one_it_resumes(entries: int) -> None:
    # A snapshot holds each node's cached answer, what of it still holds and the best
    # successors' weights; one taken before the fifth entry existed (four entries a node,
    # before recs12) or the sixth (five, before speed16) must resume as well: the same answers.
    cfg = RecommendConfig()
    build = build_catalog(cfg)
    catalog = build(None)
    asks = [
        RecAsk(f"u{n % 7}", n * 1000, "view", f"p{(n * 7) % 23}", "c1", (f"p{(n * 3) % 23}",), ())
        for n in range(400)
    ]
    catalog.on_item(asks[:300])
    state = catalog.snapshot()
    old = decode_state(state, CatalogState)
    for node in old.table.values():
        del node[entries:]  # the layout before recs12 (4) or speed16 (5)
    resumed, resumed_old = build(state), build(encode_state(old))
    expected = list(catalog.on_item(asks[300:])[0])
    assert expected and list(resumed.on_item(asks[300:])[0]) == expected
    assert list(resumed_old.on_item(asks[300:])[0]) == expected
