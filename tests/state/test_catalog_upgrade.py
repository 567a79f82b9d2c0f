"""A catalog snapshot written before ``Ranking.places`` existed resumes and answers as if never stopped.

``catalog_s15.bin`` was written by main at session 15's end (9d035c2's catalog code) from
:func:`_events` (seed 1, 800 events); the live worker's recovery holds such snapshots.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from operators.recommend import RecommendConfig
from operators.recommend_steps import Chain, _resumed
from tests.helpers import ShopperEvent

SNAPSHOT = Path(__file__).with_name("catalog_s15.bin")


def _events(seed: int, n: int, start: int) -> Iterator[ShopperEvent]:
    r = random.Random(seed)
    for i in range(n):
        user = f"u{r.randrange(100)}"
        kind = r.choice(["product_view"] * 5 + ["add_to_cart"])
        yield ShopperEvent(user, kind, start + i * 1000, f"p{r.randrange(40)}", f"c{r.randrange(8)}")


def _run(chain: Chain) -> list[list[str]]:
    return [(chain.event(e), chain.logic(e.user).published[:])[1] for e in _events(2, 3000, 10**8)]


def test_an_old_catalog_snapshot_resumes_with_the_same_answers() -> None:
    cfg = RecommendConfig()
    uninterrupted, resumed = Chain(cfg), Chain(cfg)
    for event in _events(1, 800, 0):
        uninterrupted.event(event)
        resumed.event(event)  # the customers' lists: only the catalog is resumed
    resumed.catalog.state = _resumed(SNAPSHOT.read_bytes())
    assert resumed.catalog.state.popularity.overall.places is None  # the old layout: the field is made on first use
    assert resumed.catalog.state.popularity.overall.top == uninterrupted.catalog.state.popularity.overall.top
    lists = _run(uninterrupted)
    assert sum(map(len, lists)) > 0
    assert _run(resumed) == lists
