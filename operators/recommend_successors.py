"""The recommender's successor table: which products follow which, learned per event.

The catalog step (:mod:`operators.recommend_steps`) learns each ask's pairs
(:func:`learn`) and answers with the product's best successors
(:func:`successors`). A node keeps its best ``EVAL_DEPTH`` successors in order
as it learns, so an answer seldom sorts, and caches its last answer until
learning changes what it holds. Pure functions over plain containers (the
table is snapshotted as it is: lists, dicts, strings and floats).
"""

from __future__ import annotations

from typing import Any

from operators.recommend import EVAL_DEPTH, NOTHING_FOUND, Found, RecommendConfig, index_of

# Found is a named tuple built with tuple.__new__: a third of the cost of calling the class.
_new = tuple.__new__

__all__ = ["learn", "successors", "forget_answers"]


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
