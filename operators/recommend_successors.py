"""The recommender's successor table: which products follow which, learned per event.

The catalog step (:mod:`operators.recommend_steps`) learns each ask's pairs
(:func:`learn`) and answers with the product's best successors
(:func:`successors`). A node keeps its best ``EVAL_DEPTH`` successors in order
as it learns, with their weights beside them (an answer copies them rather than looking
each up again), so an answer seldom sorts, and caches its last answer until learning changes
what it holds. Pure functions over plain containers (the
table is snapshotted as it is: lists, dicts, strings and floats).
"""

from __future__ import annotations

from typing import Any, Final

from operators.recommend import EVAL_DEPTH, NOTHING_FOUND, Found, RecommendConfig, index_of

# Found is a named tuple built with tuple.__new__: a third of the cost of calling the class.
# Both names Final: compiled, each is a C static rather than a look-up in the module's dict.
_new: Final = tuple.__new__
_FOUND: Final = Found

__all__ = ["learn", "successors", "forget_answers"]


#: What a node's cached answer (``node[2]``) still holds, kept in ``node[4]``: everything
#: (``_CURRENT``), the best successors and their weights but not the total (``_TOTAL``: most
#: learning adds a successor that does not reach the best, so only the total moved), or
#: nothing (``_STALE``). Final, as the other numbers here: compiled, each use is the number,
#: not a look-up in the module's dict.
_CURRENT: Final = 0
_TOTAL: Final = 1
_STALE: Final = 2


def learn(table: dict[str, list[Any]], cfg: RecommendConfig, source: str, successor: str, weight: float) -> None:
    """Add ``weight`` to ``successor`` after ``source``; bound the table and the node.

    A node is ``[weights, total, cached answer, best, cached state, best weights]``:
    ``best`` is the order :func:`successors` answers in (the best ``EVAL_DEPTH`` by
    weight, ties in the order first learned), kept up to date here without
    sorting, or None when unknown (a resumed snapshot: then the next answer
    sorts); the cached state says what of the cached answer still holds
    (``_CURRENT``, ``_TOTAL``, ``_STALE``); ``best weights`` are the weights of
    ``best``, place by place: a stale answer copies them instead of looking up each
    successor's weight in the node's dict again.
    The table is in least recently touched order, so the first node is the
    one to forget; it holds at most ``cfg.max_products`` products.
    """
    # Moved to the end (most recently touched) by a get and a del, not ``pop(source, None)``:
    # compiled, the pop with a default is a generic method call (about 410 instructions
    # against about 260 for the two C dict operations); the same dict after.
    node = table.get(source)
    if node is None:
        node = [{}, 0.0, None, [], _STALE, []]
        if len(table) >= cfg.max_products:
            del table[next(iter(table))]
    else:
        del table[source]
    table[source] = node
    weights: dict[str, float] = node[0]
    old = weights.get(successor)
    score = weight if old is None else old + weight
    # Boxed once (compiled, a float is native): the dict and the best weights share the object
    # rather than each making its own.
    held: Any = score
    weights[successor] = held
    # The total unboxed and added natively (compiled, ``+=`` on a list's item is a generic
    # in-place add, about 140 instructions): the same float.
    total: float = node[1]
    node[1] = total + weight
    best: list[str] | None = node[3]
    if len(weights) > 2 * cfg.neighbours:
        kept = sorted(weights, key=weights.__getitem__, reverse=True)[: cfg.neighbours]
        node[0] = {p: weights[p] for p in kept}
        node[1] = sum([weights[p] for p in kept])
        # The kept successors in their sorted order are the new dict's order too, so they are
        # what sorting it would give (ties in the order first learned, as before).
        best = node[3] = kept[:EVAL_DEPTH]
        node[4] = _STALE
        node[5] = [weights[p] for p in best]
        return
    if best is None:
        return  # the next answer sorts (node[4] is _STALE already)
    if _placed(best, node[5], weights, successor, old, score, held) == _MOVED:
        node[4] = _STALE
    elif node[4] == _CURRENT:
        node[4] = _TOTAL


def forget_answers(table: dict[str, list[Any]]) -> None:
    """Drop every node's cached answer (made again when next asked), e.g. of a resumed
    snapshot: one taken before the recs7 change holds it in an older form, one before the
    recs12 change has no fifth entry (what of the cached answer still holds), one before
    the speed16 change no sixth (the best successors' weights, made again here).
    """
    for node in table.values():
        node[2] = None
        del node[4:]
        best: list[str] | None = node[3]
        weights: dict[str, float] = node[0]
        node.append(_STALE)
        node.append(None if best is None else [weights[p] for p in best])


#: What :func:`_placed` did to a node's best successors.
_SAME: Final = 0
"""Neither the best successors nor their weights changed (the learned one is not among them)."""
_MOVED: Final = 1
"""The learned successor is among the best: the order or a weight changed."""


def _placed(
    best: list[str],
    scores: list[Any],
    weights: dict[str, float],
    successor: str,
    old: float | None,
    score: float,
    held: Any,
) -> int:
    """Raise ``successor``'s score from ``old`` (None: new) to ``score`` in ``best`` and in
    ``scores`` (the weights of ``best``, place by place), in place; return ``_SAME`` or ``_MOVED``.

    ``held`` is ``score`` as the object stored in ``weights``; ``scores`` takes that object
    (typed ``Any`` so that, compiled, a float is not boxed again at each move).

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
    last: float = scores[size - 1] if size else 0.0
    if old is not None and (
        size < EVAL_DEPTH or old >= last or best[size - 1] == successor
    ):  # (``scores`` still holds the old score: the last one's is compared only if it is another)
        i = index_of(best, successor)
    if i >= 0:
        scores[i] = held
    elif size < EVAL_DEPTH:
        best.append(successor)
        scores.append(held)
        i = size
    else:
        if score < last or (new and score == last):
            return _SAME
        if score == last and not _earlier(weights, successor, best[size - 1]):
            return _SAME
        best[size - 1] = successor
        scores[size - 1] = held
        i = size - 1
    # Scores only grow: the successor can only move up.
    while i > 0:
        before: Any = scores[i - 1]
        ahead: float = before
        if ahead > score or (new and ahead == score):
            break
        if ahead == score and not _earlier(weights, successor, best[i - 1]):
            break
        best[i - 1], best[i] = best[i], best[i - 1]
        scores[i - 1] = held
        scores[i] = before
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
        cached = node[2] = _new(_FOUND, (cached.products, cached.weights, node[1] or 1.0))
    else:
        best: list[str] | None = node[3]
        if best is None:
            # The answer is a list's depth long; more successors are kept to learn from. The
            # keys are sorted, not the items (no pair made per successor), and the stable sort
            # over the dict's order gives ties in the order first learned.
            weights: dict[str, float] = node[0]
            best = node[3] = sorted(weights, key=weights.__getitem__, reverse=True)[:EVAL_DEPTH]
            node[5] = [weights[p] for p in best]
        scores: list[float] = node[5]
        # Cached until the node learns again: the tuples are immutable, so answers already
        # sent keep what was learned when they were made.
        cached = node[2] = _new(_FOUND, (tuple(best), tuple(scores), node[1] or 1.0))
    node[4] = _CURRENT
    return cached
