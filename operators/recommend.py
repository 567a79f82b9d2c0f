"""Next-best products, learned online: the records and the pure algorithm.

The recommender is sequential rules over item transitions (Ludewig & Jannach
2018), learned per event: when a customer looks at product ``c`` after ``b``
in the same session, ``c`` becomes a likelier successor of ``b``, with weight
``1 / distance`` for the last ``window`` products. A customer's list blends
the successors of the products they looked at, the latest counting most
(``decay``), and falls back on what is popular in the product's category,
then overall (cold start). What they just bought and, configurably, what is
in their cart are never recommended, nor the product being looked at.

Three steps run it (:mod:`operators.recommend_steps`); this module holds
their records and the functions they share with the offline evaluation
(:mod:`journeyflow.recs_eval`), so both measure the same algorithm:

* the per-user journey step calls :func:`observe` per product event, which
  keeps the user's last products (a few ids) and returns a :class:`RecAsk`;
* a global popularity step (:func:`count`) counts product events (decayed),
  keeps the top products overall and per category, and splits each ask into
  :class:`ShardWork` per product shard: the pairs to learn, keyed by the
  shard of their source, and the question for the current product;
* the product step, keyed by shard, learns the pairs (:func:`learn`) and
  answers with the product's successors (:func:`successors`);
* a per-user step after the audience step blends the answer into the user's
  list (:func:`blend`, :func:`rank`).

Product-level state (counts, successors) holds product ids and weights only,
never a customer id.
"""

from __future__ import annotations

import functools
import heapq
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

__all__ = [
    "RecommendConfig",
    "RecAsk",
    "ShardWork",
    "RecAnswer",
    "RecQuality",
    "Ranking",
    "shard_of",
    "observe",
    "ranking_add",
    "ranking_top",
    "learn",
    "successors",
    "blend",
    "rank",
    "hit_figures",
    "position_of",
    "EVAL_DEPTH",
]

#: Lists are ranked this deep internally, so hit rate and MRR at 20 can be measured.
EVAL_DEPTH = 20

#: Product events and what they do: learn from the sequence, or only refresh the list.
_KINDS = {"product_view": "view", "add_to_cart": "cart", "remove_from_cart": "remove", "purchase": "purchase"}
_LEARNS = frozenset({"product_view", "add_to_cart"})


@dataclass(frozen=True)
class RecommendConfig:
    """Settings of the recommender (``[recommendations]``), shared by its steps."""

    size: int = 10
    """Products per list."""
    exclude_cart: bool = True
    """Never recommend what is in the cart."""
    window: int = 3
    """A product learns as successors the next ``window`` products of a session."""
    decay: float = 0.5
    """Weight the earlier products' successors keep at each new product (0: the latest only)."""
    neighbours: int = 40
    """Successors kept per product (top by weight)."""
    max_products: int = 100_000
    """Products kept in all (the least recently seen are forgotten)."""
    max_categories: int = 1000
    """Categories whose popular products are kept."""
    popular: int = 40
    """Popular products kept overall and per category."""
    candidates: int = 30
    """Scored products a customer's list keeps between events (up to twice as many, see :func:`blend`)."""
    shards: int = 64
    """Product-table keys: products spread over this many keys (and so over workers)."""
    session_gap_ms: int = 30 * 60_000
    """Products further apart than this are not a sequence (another session)."""
    popularity_half_life_ms: int = 7 * 86_400_000
    """Half-life of the popularity counts (event time)."""
    store_rows: bool = False
    """Write each new list to the profile store as it changes (live)."""
    payloads: Mapping[str, tuple[tuple[str, Any], ...]] = field(default_factory=dict)
    """Trigger name -> its payload entries (name, CEL expression) over ``recommendations``."""

    @property
    def per_shard(self) -> int:
        """Return the product cap of one shard."""
        return max(1, -(-self.max_products // self.shards))


class RecAsk(NamedTuple):
    """A product event of a consenting customer, from the journey step.

    The records that cross the recommender's steps are named tuples: one is
    made per product event, and a tuple is about half the cost of a frozen
    dataclass to build and to pass along.
    """

    user: str
    ts_ms: int
    kind: str
    """``view``, ``cart`` (added), ``remove`` (from the cart) or ``purchase``."""
    product: str | None
    category: str | None
    previous: tuple[str, ...]
    """The customer's products before this one in the session, latest first
    (empty when the event teaches nothing: a removal, a purchase)."""
    exclude: tuple[str, ...]
    """Products not to recommend: just bought, in the cart (if configured)."""


class ShardWork(NamedTuple):
    """What one product shard has to do for one event (the popularity step sends
    a shard all of a batch's work at once, in event order)."""

    shard: str
    pairs: tuple[tuple[str, str, float], ...]
    """``(source, successor, weight)`` with the source in this shard."""
    ask: RecAsk | None = None
    popular: tuple[str, ...] = ()
    """The top products overall, then in the product's category, as of the event."""
    in_category: tuple[str, ...] = ()
    popular_rank: int | None = None
    """The product's rank in ``popular`` before this event (popularity's hit), or None."""


class RecAnswer(NamedTuple):
    """A product's successors and the popular fill, for one customer's event."""

    ask: RecAsk
    successors: tuple[tuple[str, float], ...]
    popular: tuple[str, ...]
    in_category: tuple[str, ...]
    popular_rank: int | None


@dataclass(frozen=True, slots=True)
class RecQuality:
    """Online quality of one customer's lists: was the next product viewed in them?"""

    evaluated: int
    hits: dict[str, dict[str, float]]
    """``{"online" | "popularity": {"hit_10", "rr_10", "hit_20", "rr_20"}}`` sums."""


@functools.lru_cache(maxsize=1 << 16)
def shard_of(product: str, shards: int) -> str:
    """Return the key of the shard that holds ``product`` (stable across processes).

    >>> shard_of("sku-1", 64) == shard_of("sku-1", 64)
    True
    >>> shard_of("sku-1", 1)
    'rec:0'
    """
    return f"rec:{zlib.crc32(product.encode()) % shards}"


def observe(
    cfg: RecommendConfig,
    recent: tuple[tuple[str, int], ...],
    event: Any,
    cart: Any,
    bought: Any,
) -> tuple[RecAsk | None, tuple[tuple[str, int], ...]]:
    """Return the ask for a product event and the user's updated recent products.

    ``recent`` is ``((product, ts_ms), ...)``, latest first, at most
    ``window`` long; ``cart`` and ``bought`` are the profile's (after the
    event was applied). Events that are not about products ask nothing.
    """
    kind = _KINDS.get(event.type)
    if kind is None:
        return None, recent
    ts = event.ts_ms
    product = event.product_id
    category = event.category
    if kind == "purchase" and event.items:
        product = event.items[0].product_id
        category = event.items[0].category
    previous: tuple[str, ...] = ()
    if event.type in _LEARNS and product is not None:
        previous = tuple(p for p, t in recent if ts - t <= cfg.session_gap_ms and p != product)
        if not recent or recent[0][0] != product:
            recent = ((product, ts), *recent[: cfg.window - 1])
        else:
            recent = ((product, ts), *recent[1:])
    exclude = tuple(bought) + (tuple(cart) if cfg.exclude_cart else ())
    ask = RecAsk(event.user, ts, kind, product, category, previous, exclude)
    return ask, recent


# -- popularity (a global step: a few dict operations per event) ---------------


@dataclass(slots=True)
class Ranking:
    """The top products by a growing score, best first (a short list)."""

    top: list[str]
    scores: dict[str, float]
    view: tuple[str, ...] | None = None
    """``top[:EVAL_DEPTH]`` as sent with each ask; None when the order changed since.
    Most events only raise a score without reordering, so the tuple is reused."""


def ranking_add(ranking: Ranking, product: str, score: float, size: int) -> None:
    """Set ``product``'s score (scores only grow) and keep ``ranking`` sorted.

    >>> r = Ranking([], {})
    >>> for p, s in [("a", 1.0), ("b", 2.0), ("c", 0.5), ("a", 3.0)]:
    ...     ranking_add(r, p, s, 2)
    >>> r.top
    ['a', 'b']
    """
    top, scores = ranking.top, ranking.scores
    if product in scores:
        i = top.index(product)
    elif len(top) < size:
        top.append(product)
        i = len(top) - 1
        ranking.view = None
    elif score > scores[top[-1]]:
        del scores[top[-1]]
        top[-1] = product
        i = size - 1
        ranking.view = None
    else:
        return
    scores[product] = score
    # Scores only grow, so the product can only move up.
    while i > 0 and scores[top[i - 1]] < score:
        top[i - 1], top[i] = top[i], top[i - 1]
        i -= 1
        ranking.view = None


def ranking_top(ranking: Ranking) -> tuple[str, ...]:
    """Return the best ``EVAL_DEPTH`` products of ``ranking`` (cached until the order changes).

    >>> r = Ranking([], {})
    >>> ranking_add(r, "a", 1.0, 40)
    >>> ranking_top(r) is ranking_top(r), ranking_top(r)
    (True, ('a',))
    """
    view = ranking.view
    if view is None:
        view = ranking.view = tuple(ranking.top[:EVAL_DEPTH])
    return view


# -- successors (the product step, keyed by shard) -----------------------------


def learn(
    table: dict[str, list[Any]], cfg: RecommendConfig, source: str, successor: str, weight: float
) -> None:
    """Add ``weight`` to ``successor`` after ``source``; bound the table and the node.

    A node is ``[weights, total, cached answer]``; the table is in least
    recently touched order, so the first node is the one to forget.
    """
    node = table.pop(source, None)
    if node is None:
        node = [{}, 0.0, None]
        if len(table) >= cfg.per_shard:
            del table[next(iter(table))]
    table[source] = node
    weights: dict[str, float] = node[0]
    weights[successor] = weights.get(successor, 0.0) + weight
    node[1] += weight
    node[2] = None
    if len(weights) > 2 * cfg.neighbours:
        kept = heapq.nlargest(cfg.neighbours, weights.items(), key=itemgetter(1))
        node[0] = dict(kept)
        node[1] = sum(w for _, w in kept)


def successors(table: dict[str, list[Any]], cfg: RecommendConfig, product: str) -> tuple[tuple[str, float], ...]:
    """Return ``product``'s successors, best first, weights summing to 1 (an estimate
    of the chance that each comes next)."""
    node = table.get(product)
    if node is None:
        return ()
    cached = node[2]
    if cached is None:
        total = node[1] or 1.0
        # The answer is a list's depth long; more successors are kept to learn from.
        best = heapq.nlargest(EVAL_DEPTH, node[0].items(), key=itemgetter(1))
        cached = node[2] = tuple((p, w / total) for p, w in best)
    return cached


# -- a customer's list (per user, after the audience step) ---------------------


#: Forward decay in a customer's scores: rebase them before the scale gets near the float limit.
_MAX_SCALE = 2.0**200


def blend(
    scores: dict[str, float],
    scale: float,
    cfg: RecommendConfig,
    found: tuple[tuple[str, float], ...],
    fresh: bool,
) -> tuple[dict[str, float], float]:
    """Return the customer's candidate scores and scale after a product with successors ``found``.

    Earlier candidates keep ``decay`` of their weight at each new product
    (none when ``fresh``: a new session starts over). Rather than shrink
    every earlier score, the new product's successors count ``1 / decay``
    times more than the previous product's (forward decay: the same order,
    a few dictionary updates per event). ``scores`` is updated in place.
    Between ``candidates`` and twice as many are kept: trimming to the best
    ``candidates`` when there are twice as many costs a sort every few events
    rather than at every one.

    >>> cfg = RecommendConfig(decay=0.5, candidates=1)
    >>> blend({"a": 1.0}, 1.0, cfg, (("b", 0.5),), True)
    ({'b': 0.5}, 1.0)
    >>> blend({"a": 1.0, "b": 0.2}, 1.0, cfg, (("b", 0.5), ("c", 0.3)), False)
    ({'b': 1.2}, 2.0)
    """
    decay = cfg.decay
    if fresh or not decay:
        scores = {}
        scale = 1.0
    else:
        scale /= decay
        if scale > _MAX_SCALE:
            scores = {p: s / scale for p, s in scores.items()}
            scale = 1.0
    get = scores.get
    for product, weight in found:
        scores[product] = get(product, 0.0) + weight * scale
    if len(scores) > 2 * cfg.candidates:
        scores = dict(heapq.nlargest(cfg.candidates, scores.items(), key=itemgetter(1)))
    return scores, scale


def rank(
    scores: dict[str, float],
    exclude: set[str],
    fill: tuple[tuple[str, ...], ...],
    depth: int = EVAL_DEPTH,
) -> tuple[str, ...]:
    """Return the best ``depth`` products: by score, then from each ``fill`` list in turn.

    >>> rank({"a": 0.1, "b": 0.7}, {"a"}, (("c", "b", "d"),), 3)
    ('b', 'c', 'd')
    """
    # A stable sort: equal scores keep the order they were first scored in.
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    if exclude:
        ranked = [p for p in ranked if p not in exclude]
    if len(ranked) < depth:
        seen = set(ranked) | exclude
        for products in fill:
            for product in products:
                if product not in seen:
                    seen.add(product)
                    ranked.append(product)
                    if len(ranked) >= depth:
                        break
            if len(ranked) >= depth:
                break
    return tuple(ranked[:depth])


def hit_figures(position: int | None) -> dict[str, float]:
    """Return hit and reciprocal rank at 10 and 20 of a target at 1-based ``position``.

    >>> hit_figures(2)
    {'hit_10': 1.0, 'rr_10': 0.5, 'hit_20': 1.0, 'rr_20': 0.5}
    >>> hit_figures(None)["hit_20"]
    0.0
    """
    if position is None or position > 20:
        return {"hit_10": 0.0, "rr_10": 0.0, "hit_20": 0.0, "rr_20": 0.0}
    at10 = position <= 10
    return {"hit_10": float(at10), "rr_10": 1.0 / position if at10 else 0.0, "hit_20": 1.0, "rr_20": 1.0 / position}


def position_of(ranked: tuple[str, ...] | list[str], target: str) -> int | None:
    """Return the 1-based position of ``target`` in ``ranked``, or None.

    >>> position_of(("a", "b"), "b"), position_of(("a",), "c")
    (2, None)
    """
    try:
        return ranked.index(target) + 1
    except ValueError:
        return None
