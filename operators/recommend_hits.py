"""The recommender's online quality: where a viewed product stood in the customer's list.

At each view the lists step (:mod:`operators.recommend_lists`) asks where the
viewed product stood in the list the customer had (:func:`list_position`),
and in the popular products, and adds the hits to the customer's sums
(:func:`add_hits`), reported as :class:`~operators.recommend.RecQuality`.
Most views miss the list: the position is found from the scores without
ranking them (the ranking would be thrown away at the answer), and the same
place :func:`operators.recommend_scores.rank` gives (a test holds them equal).
"""

from __future__ import annotations

from array import array
from typing import Final

from operators.recommend import EVAL_DEPTH

__all__ = ["ONLINE", "POPULARITY", "list_position", "fill_position", "add_hits", "hit_sums", "sums_of"]

#: Where each list's sums start in a customer's packed sums: hit_10, rr_10, hit_20, rr_20.
#: Final: compiled, the modules that import them use the numbers, not a look-up by name.
ONLINE: Final = 0
POPULARITY: Final = 4
_FIGURES: Final = ("hit_10", "rr_10", "hit_20", "rr_20")
#: Each list's name in :class:`~operators.recommend.RecQuality` and where its sums start.
_LISTS: Final = (("online", ONLINE), ("popularity", POPULARITY))


def _no_sums() -> array[float]:
    return array("d", bytes(8 * 2 * len(_FIGURES)))


def list_position(
    scores: dict[str, float], exclude: tuple[str, ...], fill: tuple[tuple[str, ...], ...], product: str
) -> int | None:
    """Return ``product``'s 1-based position in the list ranked from ``scores``, or None.

    A product among the scores is placed by counting what ranks before it
    (a higher score, or an equal one scored earlier: ``rank``'s stable
    sort), without ranking the list; one that is not scored can only be
    in the popular fill, after every scored product.

    >>> list_position({"a": 0.5, "b": 0.7, "c": 0.5}, (), (), "c")
    3
    """
    score = scores.get(product)
    if score is None:
        return fill_position(scores, exclude, fill, product)
    if _listed(exclude, product):
        return None
    depth = EVAL_DEPTH
    before = 0
    earlier = True  # products scored before this one rank first on equal scores
    for other, value in scores.items():
        if other == product:
            earlier = False
        elif value > score or (earlier and value == score):
            if not _listed(exclude, other):
                before += 1
                if before >= depth:
                    return None  # below the list's depth: the rest need not be looked at
    return before + 1


def fill_position(
    scores: dict[str, float], exclude: tuple[str, ...], fill: tuple[tuple[str, ...], ...], product: str
) -> int | None:
    """Return the 1-based position of ``product``, which is not scored, in the list, or None.

    The same place :func:`operators.recommend_scores.rank` would give it, without sorting the scores
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
    if _listed(exclude, product) or not any(_listed(products, product) for products in fill):
        return None  # most views: the product is in no popular list
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


def _listed(products: tuple[str, ...], product: str) -> bool:
    """Return ``product in products``, by a loop of string compares.

    Compiled, each compare is a direct string compare (the same object, else the same
    length, kind and characters): about 40 instructions a product, where ``in`` over a
    tuple makes a generic rich compare of each (about 70; most views look through the
    two popular lists of 20 and find nothing).

    >>> _listed(("a", "b"), "".join(["b"])), _listed((), "a")
    (True, False)
    """
    for other in products:
        if other == product:
            return True
    return False


def add_hits(sums: array[float] | None, at: int, position: int | None) -> array[float] | None:
    """Add a target at 1-based ``position`` of the list whose sums start at ``at`` (:data:`ONLINE`,
    :data:`POPULARITY`); return the sums (made at the first hit: a miss adds nothing).

    >>> add_hits(add_hits(None, ONLINE, 2), ONLINE, None)
    array('d', [1.0, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    """
    # A miss adds nothing (most views): only hits touch the sums.
    if position is not None and position <= 20:
        if sums is None:
            sums = _no_sums()
        rr = 1.0 / position
        if position <= 10:
            sums[at] += 1.0
            sums[at + 1] += rr
        sums[at + 2] += 1.0
        sums[at + 3] += rr
    return sums


def hit_sums(sums: array[float] | None) -> dict[str, dict[str, float]]:
    """Return the sums as :class:`~operators.recommend.RecQuality` reports them: each list with
    a hit, ``{"online" | "popularity": {"hit_10", "rr_10", "hit_20", "rr_20"}}``.

    >>> hit_sums(add_hits(None, POPULARITY, 20))
    {'popularity': {'hit_10': 0.0, 'rr_10': 0.0, 'hit_20': 1.0, 'rr_20': 0.05}}
    """
    out: dict[str, dict[str, float]] = {}
    if sums is not None:
        for name, at in _LISTS:
            if sums[at + 2]:  # a list's every hit counts in hit_20
                out[name] = {figure: sums[at + i] for i, figure in enumerate(_FIGURES)}
    return out


def sums_of(hits: dict[str, dict[str, float]]) -> array[float] | None:
    """Return the packed sums of ``hits``, given in :func:`hit_sums`' form (its inverse: a version-4 snapshot's dicts).

    >>> sums = add_hits(None, POPULARITY, 3)
    >>> sums_of(hit_sums(sums)) == sums, sums_of({})
    (True, None)
    """
    sums = None
    for name, at in _LISTS:
        figures = hits.get(name)
        if figures is not None:
            if sums is None:
                sums = _no_sums()
            for i, figure in enumerate(_FIGURES):
                sums[at + i] = figures[figure]
    return sums
