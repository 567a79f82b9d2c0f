"""The recommender's scores: the popularity rankings, a customer's blended list.

Pure functions over plain containers. The catalog step
(:mod:`operators.recommend_steps`) keeps the popular products, overall and per
category, in rankings (:class:`Ranking`); a customer's list
(:mod:`operators.recommend_lists`) blends the successors of the products they
looked at into candidate scores (:func:`blend`) and ranks them, filled up with
the popular products (:func:`rank`). The successor table is in
:mod:`operators.recommend_successors`. Top-k selections sort
(``sorted(...)[:k]``) rather than use ``heapq.nlargest``: over the few dozen
entries kept here the C sort is several times cheaper, and the result is
the same, ties included (``nlargest`` is documented as equivalent). (An insertion
into a short ordered list, compiled, cost more than the sort: recs19.)
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from typing import Any, Final

from operators.recommend import EVAL_DEPTH, Found, RecommendConfig, index_of

__all__ = [
    "Ranking",
    "ranking_add",
    "ranking_top",
    "blend",
    "rank",
    "ranked_list",
    "pack",
    "unpack",
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
    places: list[float] | None = None
    """The scores of ``top``, place by place (the objects ``scores`` holds), so that a
    product moving up reads the scores above it from a list, not from the dict; None when
    not known (a snapshot from before the field, a rebase, a product dropped): made from
    ``scores`` at the next :func:`ranking_add`. Last, so older snapshots still load."""


def ranking_add(ranking: Ranking, product: str, score: float, size: int, held: Any = None) -> None:
    """Set ``product``'s score (scores only grow) and keep ``ranking`` sorted.

    ``held``, if given, is ``score`` as an object, stored instead of boxing ``score``
    again (compiled, a float is native; the caller shares one object among its tables).

    >>> r = Ranking([], {})
    >>> for p, s in [("a", 1.0), ("b", 2.0), ("c", 0.5), ("a", 3.0)]:
    ...     ranking_add(r, p, s, 2)
    >>> r.top
    ['a', 'b']
    """
    top, scores = ranking.top, ranking.scores
    # The places typed Any: compiled, the objects are moved as they are (through list[float]
    # each would be unboxed and boxed anew), and a score is unboxed only to be compared.
    places: list[Any] | None = ranking.places
    if places is None:
        places = ranking.places = [scores[p] for p in top]
    boxed: Any = score if held is None else held
    # The cached view is the first EVAL_DEPTH places: a change below them leaves it as it is
    # (most counts move a product among the lower places of the category rankings).
    if product in scores:
        i = index_of(top, product)
        if i >= 0:
            places[i] = boxed
    elif len(top) < size:
        top.append(product)
        places.append(boxed)
        i = len(top) - 1
        if i < EVAL_DEPTH:
            ranking.view = None
    else:
        last: float = places[-1]
        if not score > last:
            return
        del scores[top[-1]]
        top[-1] = product
        places[-1] = boxed
        i = size - 1
        if i < EVAL_DEPTH:
            ranking.view = None
    scores[product] = boxed
    # Scores only grow, so the product can only move up: past the places whose score is
    # lower, read from the list (a dict look-up each, before: about 135 instructions).
    while i > 0:
        before: Any = places[i - 1]
        ahead: float = before
        if not ahead < score:
            break
        top[i - 1], top[i] = top[i], top[i - 1]
        places[i - 1], places[i] = places[i], before
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


# -- a customer's list (per user, after the audience step) ---------------------


#: Forward decay in a customer's scores: rebase them before the scale gets near the float limit.
_MAX_SCALE: Final = 2.0**200


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
    # (weight / total) * scale: the chance first, as it was when answers carried chances.
    # One look-up for a product not yet scored (most successors): setdefault stores the
    # addend itself (0.0 + x is x for every positive x) and returns it, where a get and a
    # store looked the key up twice. A product already scored gets the object it holds
    # back, and the sum is stored (a second look-up, as before). The addend and the dict's
    # values typed Any (``held``): compiled, the addend is boxed once and the object
    # returned is the one stored, compared by identity (through ``dict[str, float]`` it
    # would be unboxed from the result, and a new product taken for a scored one).
    # setdefault is called directly, not through a bound method kept in a local: compiled,
    # the direct call is a C dict operation, the bound one a generic Python call.
    held: dict[str, Any] = scores
    products = found.products
    weights = found.weights
    total = found.total
    for i in range(len(products)):
        product = products[i]
        added = weights[i] / total * scale
        boxed: Any = added
        stored: Any = held.setdefault(product, boxed)
        if stored is not boxed:
            old: float = stored
            scores[product] = old + added
    if len(scores) > 2 * cfg.candidates:
        # Keys sorted, not items (see operators.recommend_successors.successors): the same
        # order, ties included. The kept scores are the objects already held (through
        # ``held``: compiled, a float would be unboxed and boxed anew for the new dict).
        best = sorted(scores, key=scores.__getitem__, reverse=True)[: cfg.candidates]
        scores = {p: held[p] for p in best}
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
    return tuple(ranked_list(scores, exclude, fill, depth))


def ranked_list(
    scores: dict[str, float],
    exclude: set[str] | frozenset[str] | tuple[str, ...],
    fill: tuple[tuple[str, ...], ...],
    depth: int,
) -> list[str]:
    """Return :func:`rank`'s products as a new list (``depth`` >= 0): the first ``depth`` of
    a deeper ranking, for any ``depth``.

    What is left out is looked for only among the first products, as deep as the list
    goes (most lists are scored well past the published ``size``). Equal scores keep the
    order they were first scored in (a stable sort).
    """
    ranked: list[str] = []
    for product in sorted(scores, key=scores.__getitem__, reverse=True):
        if len(ranked) >= depth:
            break
        if not exclude or product not in exclude:
            ranked.append(product)
    if len(ranked) < depth:
        seen = set(ranked)
        seen.update(exclude)
        for listed in fill:
            for product in listed:
                if product not in seen:
                    seen.add(product)
                    ranked.append(product)
                    if len(ranked) >= depth:
                        break
            if len(ranked) >= depth:
                break
    return ranked


#: One struct per length of packed scores (at most ``2 * candidates + 1`` lengths), made when first used.
_PACKERS: Final[dict[int, Struct]] = {}


def _packer(n: int) -> Struct:
    packer = _PACKERS.get(n)
    if packer is None:
        packer = _PACKERS[n] = Struct(f"{n}d")
    return packer


def pack(scores: dict[str, float]) -> tuple[tuple[str, ...], bytes]:
    """Return ``scores`` packed: the products in the dict's order and their scores as doubles.

    :func:`unpack` gives the same dict back: the same order (which breaks ties in
    :func:`rank` and :func:`blend`'s trim) and the same floats. About 16 bytes a product
    against about 60 in a dict of boxed floats. Packed by a struct of the length, not an
    ``array("d", ...)``: that converts each float by a generic argument parse (about 200
    instructions a score, against about 30).

    >>> unpack(*pack({"b": 0.5, "a": 0.25, "c": 0.5}))
    {'b': 0.5, 'a': 0.25, 'c': 0.5}
    """
    values = tuple(scores.values())
    return tuple(scores), _packer(len(values)).pack(*values)


def unpack(products: tuple[str, ...], scores: bytes) -> dict[str, float]:
    """Return the scores :func:`pack` packed, as a dict of their own."""
    return dict(zip(products, _packer(len(products)).unpack(scores), strict=True))
