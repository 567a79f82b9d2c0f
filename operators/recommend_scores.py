"""The recommender's scores: popularity rankings, successor tables, a customer's blend.

Pure functions over plain containers, shared by the dataflow's steps
(:mod:`operators.recommend_steps`, :mod:`operators.recommend_lists`) and so
by the offline evaluation, which drives those steps. Top-k selections sort
(``sorted(...)[:k]``) rather than use ``heapq.nlargest``: over the few dozen
entries kept here the C sort is several times cheaper, and the result is
the same, ties included (``nlargest`` is documented as equivalent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.recommend import EVAL_DEPTH, NOTHING_FOUND, Found, RecommendConfig

# Found is a named tuple built with tuple.__new__: a third of the cost of calling the class.
_new = tuple.__new__

__all__ = [
    "Ranking",
    "ranking_add",
    "ranking_top",
    "learn",
    "successors",
    "forget_answers",
    "index_of",
    "blend",
    "rank",
    "fill_position",
]


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
    # The cached view is the first EVAL_DEPTH places: a change below them leaves it as it is
    # (most counts move a product among the lower places of the category rankings).
    if product in scores:
        i = index_of(top, product)
    elif len(top) < size:
        top.append(product)
        i = len(top) - 1
        if i < EVAL_DEPTH:
            ranking.view = None
    elif score > scores[top[-1]]:
        del scores[top[-1]]
        top[-1] = product
        i = size - 1
        if i < EVAL_DEPTH:
            ranking.view = None
    else:
        return
    scores[product] = score
    # Scores only grow, so the product can only move up.
    while i > 0 and scores[top[i - 1]] < score:
        top[i - 1], top[i] = top[i], top[i - 1]
        i -= 1
        if i < EVAL_DEPTH:
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


# -- successors (the catalog step) ---------------------------------------------


#: What a node's cached answer (``node[2]``) still holds, kept in ``node[4]``: everything
#: (``_CURRENT``), the best successors and their weights but not the total (``_TOTAL``: most
#: learning adds a successor that does not reach the best, so only the total moved), or
#: nothing (``_STALE``).
_CURRENT = 0
_TOTAL = 1
_STALE = 2


def learn(table: dict[str, list[Any]], cfg: RecommendConfig, source: str, successor: str, weight: float) -> None:
    """Add ``weight`` to ``successor`` after ``source``; bound the table and the node.

    A node is ``[weights, total, cached answer, best, cached state]``: ``best``
    is the order :func:`successors` answers in (the best ``EVAL_DEPTH`` by
    weight, ties in the order first learned), kept up to date here without
    sorting, or None when unknown (a resumed snapshot: then the next answer
    sorts); the cached state says what of the cached answer still holds
    (``_CURRENT``, ``_TOTAL``, ``_STALE``).
    The table is in least recently touched order, so the first node is the
    one to forget; it holds at most ``cfg.max_products`` products.
    """
    node = table.pop(source, None)
    if node is None:
        node = [{}, 0.0, None, [], _STALE]
        if len(table) >= cfg.max_products:
            del table[next(iter(table))]
    table[source] = node
    weights: dict[str, float] = node[0]
    old = weights.get(successor)
    score = weight if old is None else old + weight
    weights[successor] = score
    node[1] += weight
    best: list[str] | None = node[3]
    if len(weights) > 2 * cfg.neighbours:
        kept = sorted(weights, key=weights.__getitem__, reverse=True)[: cfg.neighbours]
        node[0] = {p: weights[p] for p in kept}
        node[1] = sum([weights[p] for p in kept])
        # The kept successors in their sorted order are the new dict's order too, so they are
        # what sorting it would give (ties in the order first learned, as before).
        node[3] = kept[:EVAL_DEPTH]
        node[4] = _STALE
        return
    if best is None:
        return  # the next answer sorts (node[4] is _STALE already)
    if _placed(best, weights, successor, old, score) == _MOVED:
        node[4] = _STALE
    elif node[4] == _CURRENT:
        node[4] = _TOTAL


def forget_answers(table: dict[str, list[Any]]) -> None:
    """Drop every node's cached answer (made again when next asked), e.g. of a resumed
    snapshot: one taken before the recs7 change holds it in an older form, one before the
    recs12 change has no fifth entry (what of the cached answer still holds).
    """
    for node in table.values():
        node[2] = None
        del node[4:]
        node.append(_STALE)


#: What :func:`_placed` did to a node's best successors.
_SAME = 0
"""Neither the best successors nor their weights changed (the learned one is not among them)."""
_MOVED = 1
"""The learned successor is among the best: the order or a weight changed."""


def _placed(best: list[str], weights: dict[str, float], successor: str, old: float | None, score: float) -> int:
    """Raise ``successor``'s score from ``old`` (None: new) to ``score`` in ``best``, in place;
    return ``_SAME`` or ``_MOVED``.

    ``best`` is what a stable sort of ``weights`` by score gives, cut to ``EVAL_DEPTH``: on
    equal scores the successor first learned (earlier in the dict) ranks first. A new
    successor is last in the dict, so it ranks after every equal score; another is placed
    by looking at which comes first in the dict (:func:`_earlier`), without sorting.
    ``best`` holds the successors of the highest weights, so a successor that is new, or
    whose old weight is below the last one's (``best`` full), is not in it: only the others
    are looked for.
    """
    new = old is None
    size = len(best)
    i = -1
    if old is not None and (
        size < EVAL_DEPTH or old >= weights[best[size - 1]] or best[size - 1] == successor
    ):  # (``weights`` holds the new score already: the last one's is read as learned only if it is another)
        i = index_of(best, successor)
    if i >= 0:
        pass
    elif size < EVAL_DEPTH:
        best.append(successor)
        i = size
    else:
        last = weights[best[size - 1]]
        if score < last or (new and score == last):
            return _SAME
        if score == last and not _earlier(weights, successor, best[size - 1]):
            return _SAME
        best[size - 1] = successor
        i = size - 1
    # Scores only grow: the successor can only move up.
    while i > 0:
        ahead = weights[best[i - 1]]
        if ahead > score or (new and ahead == score):
            break
        if ahead == score and not _earlier(weights, successor, best[i - 1]):
            break
        best[i - 1], best[i] = best[i], best[i - 1]
        i -= 1
    return _MOVED


def _earlier(weights: dict[str, float], first: str, other: str) -> bool:
    """Return whether ``first`` comes before ``other`` in ``weights`` (both are in it): the
    order of a tie in a stable sort (a walk over at most ``2 x neighbours`` keys, where
    sorting the node again sorted them all).

    >>> _earlier({"a": 1.0, "b": 1.0}, "b", "a")
    False
    """
    for key in weights:
        if key == first:
            return True
        if key == other:
            return False
    return False


def index_of(items: list[str], item: str) -> int:
    """Return the index of ``item`` in ``items`` (each id at most once), or -1.

    Product ids are interned where they enter (:func:`operators.recommend.observe`), so
    an id is mostly the very object held here: looked for by identity first (a pointer
    comparison, compiled), by equality only when that misses (an id from elsewhere: a
    resumed snapshot, a test). ``list.index`` compares each element by a generic call.

    >>> index_of(["a", "b"], "".join(["b"])), index_of(["a"], "c")
    (1, -1)
    """
    for i in range(len(items)):
        if items[i] is item:
            return i
    for i in range(len(items)):
        if items[i] == item:
            return i
    return -1


def successors(table: dict[str, list[Any]], product: str) -> Found:
    """Return ``product``'s best successors and their learned weights (see :class:`Found`).

    >>> table: dict[str, list[Any]] = {}
    >>> learn(table, RecommendConfig(), "a", "b", 1.0); learn(table, RecommendConfig(), "a", "c", 3.0)
    >>> successors(table, "a")
    Found(products=('c', 'b'), weights=(3.0, 1.0), total=4.0)
    """
    node = table.get(product)
    if node is None:
        return NOTHING_FOUND
    cached: Found | None = node[2]
    held = node[4]
    if held == _CURRENT and cached is not None:
        return cached
    if held == _TOTAL and cached is not None:
        # Only the total moved since: the same successors and weights (the same tuples, shared
        # with the earlier answer, not copied again), the new total.
        cached = node[2] = _new(Found, (cached.products, cached.weights, node[1] or 1.0))
    else:
        weights: dict[str, float] = node[0]
        best: list[str] | None = node[3]
        if best is None:
            # The answer is a list's depth long; more successors are kept to learn from. The
            # keys are sorted, not the items (no pair made per successor), and the stable sort
            # over the dict's order gives ties in the order first learned.
            best = node[3] = sorted(weights, key=weights.__getitem__, reverse=True)[:EVAL_DEPTH]
        # Cached until the node learns again: the tuples are immutable, so answers already
        # sent keep what was learned when they were made.
        cached = node[2] = _new(Found, (tuple(best), tuple([weights[p] for p in best]), node[1] or 1.0))
    node[4] = _CURRENT
    return cached


# -- a customer's list (per user, after the audience step) ---------------------


#: Forward decay in a customer's scores: rebase them before the scale gets near the float limit.
_MAX_SCALE = 2.0**200


def blend(
    scores: dict[str, float],
    scale: float,
    cfg: RecommendConfig,
    found: Found,
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
    >>> blend({"a": 1.0}, 1.0, cfg, Found(("b",), (1.0,), 2.0), True)
    ({'b': 0.5}, 1.0)
    >>> blend({"a": 1.0, "b": 0.2}, 1.0, cfg, Found(("b", "c"), (0.5, 0.3), 1.0), False)
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
    # scores.get called directly, not through a bound method kept in a local: compiled, the
    # direct call is a C dict lookup, the bound one a generic Python call per successor.
    # (weight / total) * scale: the chance first, as it was when answers carried chances.
    products = found.products
    weights = found.weights
    total = found.total
    for i in range(len(products)):
        product = products[i]
        scores[product] = scores.get(product, 0.0) + weights[i] / total * scale
    if len(scores) > 2 * cfg.candidates:
        # Keys sorted, not items (see successors): the same order, ties included.
        best = sorted(scores, key=scores.__getitem__, reverse=True)[: cfg.candidates]
        scores = {p: scores[p] for p in best}
    return scores, scale


def rank(
    scores: dict[str, float],
    exclude: set[str] | frozenset[str] | tuple[str, ...],
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
        seen = set(ranked)
        seen.update(exclude)
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


def fill_position(
    scores: dict[str, float], exclude: tuple[str, ...], fill: tuple[tuple[str, ...], ...], product: str
) -> int | None:
    """Return the 1-based position of ``product``, which is not scored, in the list, or None.

    The same place :func:`rank` would give it, without sorting the scores
    (most views of a customer with a short list land here, and the ranking
    would be thrown away at the answer): the scored products that are not
    left out come first, then the popular fill, each product once.
    """
    depth = EVAL_DEPTH
    # ``exclude`` may name a product twice (bought and in the cart): count each once.
    left_out = {p for p in exclude if p in scores}
    position = len(scores) - len(left_out)
    if position >= depth:
        return None  # the list is full of scored products, and this is not one
    if product in exclude or not any(product in products for products in fill):
        return None  # most views: the product is in no popular list (a scan in C)
    counted: set[str] = set()
    for products in fill:
        for other in products:
            if other in scores or other in exclude or other in counted:
                continue
            position += 1
            if other == product:
                return position
            if position >= depth:
                return None
            counted.add(other)
    return None
