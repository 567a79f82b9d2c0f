"""Next-best products, learned online: the records and the pure algorithm.

The recommender is sequential rules over item transitions (Ludewig & Jannach
2018), learned per event: when a customer looks at product ``c`` after ``b``
in the same session, ``c`` becomes a likelier successor of ``b``, with weight
``1 / distance`` for the last ``window`` products. A customer's list blends
the successors of the products they looked at, the latest counting most
(``decay``), and falls back on what is popular in the product's category,
then overall (cold start). What they just bought and, configurably, what is
in their cart are never recommended, nor the product being looked at.

Two steps run it (:mod:`operators.recommend_steps`,
:mod:`operators.recommend_lists`); this module holds their settings, their
records and the per-user part of the algorithm,
:mod:`operators.recommend_successors` the successor table,
:mod:`operators.recommend_scores` the popularity rankings and a customer's
blend, :mod:`operators.recommend_hits` the online hit rate. The offline evaluation
(:mod:`journeyflow.recs_eval`) drives the same steps, so both measure the
same algorithm:

* the per-user journey step calls :func:`observe` per product event, which
  keeps the user's last products (a few ids) and returns a :class:`RecAsk`;
* the catalog step (one key) takes a batch's asks as one item and, per ask
  in order, learns the pairs (:func:`operators.recommend_successors.learn`),
  finds the product's successors
  (:func:`operators.recommend_successors.successors`), counts the product
  (decayed) in the top products overall and per category, and answers each
  customer with one list of :class:`RecAnswer` per batch;
* the audience step (per user) blends the answers into the user's list
  (:func:`operators.recommend_scores.blend`, ``rank``).

Product-level state (counts, successors) holds product ids and weights only,
never a customer id.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

__all__ = [
    "RecommendConfig",
    "RecAsk",
    "RecAnswer",
    "Found",
    "NOTHING_FOUND",
    "RecQuality",
    "observe",
    "hit_figures",
    "position_of",
    "index_of",
    "EVAL_DEPTH",
]

#: Lists are ranked this deep internally, so hit rate and MRR at 20 can be measured. Final:
#: compiled, every module that imports it uses the number (not a look-up in this module's
#: dict at each use, in the rankings' and successors' loops too).
EVAL_DEPTH: Final = 20

#: Product events and what they do: learn from the sequence, or only refresh the list.
#: Final, as ``sys.intern`` kept below: compiled, each is a C static, where a plain module
#: name (or ``sys.intern``, an attribute of a module) is a look-up by name at each use
#: (about 140 instructions; :func:`observe` runs for every event).
_KINDS: Final = {"product_view": "view", "add_to_cart": "cart", "remove_from_cart": "remove", "purchase": "purchase"}
_LEARNS: Final = frozenset({"product_view", "add_to_cart"})
_intern: Final = sys.intern


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
    """Scored products a customer's list keeps between events (up to twice as many, see :func:`operators.recommend_scores.blend`)."""
    session_gap_ms: int = 30 * 60_000
    """Products further apart than this are not a sequence (another session)."""
    popularity_half_life_ms: int = 7 * 86_400_000
    """Half-life of the popularity counts (event time)."""
    store_rows: bool = False
    """Write each new list to the profile store as it changes (live)."""
    payloads: Mapping[str, tuple[tuple[str, Any], ...]] = field(default_factory=dict)
    """Trigger name -> its payload entries (name, CEL expression) over ``recommendations``."""


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


# RecAsk built by tuple.__new__ (:func:`observe`), both names Final: compiled, C statics
# rather than a method looked up on ``tuple`` and a class looked up in the module's dict.
_new: Final = tuple.__new__
_ASK: Final = RecAsk


class Found(NamedTuple):
    """A product's best successors as learned when asked: each one's chance of coming next
    is ``weights[i] / total``.

    The learned weights themselves, not the chances: the floats are the
    successor table's own (shared, not made per answer), and three tuples
    are made where pairs cost one tuple and one float per successor. The
    customer's list divides when it blends (the same division, so the same
    floats, as dividing here).
    """

    products: tuple[str, ...]
    weights: tuple[float, ...]
    total: float


#: The answer for a product with no successors learned yet (Final: compiled, a C static
#: rather than a look-up in the module's dict at each use).
NOTHING_FOUND: Final = Found((), (), 1.0)


class RecAnswer(NamedTuple):
    """A product's successors and the popular fill, for one customer's event."""

    ask: RecAsk
    successors: Found
    popular: tuple[str, ...]
    in_category: tuple[str, ...]
    popular_rank: int | None


@dataclass(frozen=True, slots=True, init=False)
class RecQuality:
    """Online quality of one customer's lists: was the next product viewed in them?

    ``__init__`` is written out: compiled, the one dataclasses generates runs interpreted
    (about 3,500 instructions, one per customer with views at the end of input). Frozen, it
    sets the fields through ``object.__setattr__``, as the generated one does.
    """

    evaluated: int
    hits: dict[str, dict[str, float]]
    """``{"online" | "popularity": {"hit_10", "rr_10", "hit_20", "rr_20"}}`` sums."""

    def __init__(self, evaluated: int, hits: dict[str, dict[str, float]]) -> None:
        object.__setattr__(self, "evaluated", evaluated)
        object.__setattr__(self, "hits", hits)


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
    event_type = event.type  # (read once: ``event`` is any object with these fields)
    kind = _KINDS.get(event_type)
    if kind is None:
        return None, recent
    # The time kept as read (an object, stored in the ask and in ``recent``) and as a number
    # (compiled, a native int: the session gap is judged without boxing ``recent``'s times).
    ts_ms: Any = event.ts_ms
    ts: int = ts_ms
    product: str | None = event.product_id
    category: str | None = event.category
    if kind == "purchase" and event.items:
        product = event.items[0].product_id
        category = event.items[0].category
    # Interned: the catalog's tables, the customers' scores and what they leave out then hold
    # one object per product, and their lookups match by identity rather than comparing
    # characters in another object (one lookup here saves several there).
    if product is not None:
        product = _intern(product)
    if category is not None:
        category = _intern(category)
    previous: tuple[str, ...] = ()
    if event_type in _LEARNS and product is not None:
        gap = cfg.session_gap_ms
        previous = tuple([p for p, t in recent if ts - t <= gap and p != product])
        # A tuple concatenation rather than ``(pair, *rest)``, which builds a list first.
        if not recent or recent[0][0] != product:
            recent = ((product, ts_ms),) + recent[: cfg.window - 1]
        else:
            recent = ((recent[0][0], ts_ms),) + recent[1:]
    # Most customers have bought nothing lately and have an empty cart: only a non-empty one
    # is made a tuple (tuple() of an empty dict is the shared empty tuple, but it still walks
    # the dict through an iterator: about 500 instructions).
    exclude: tuple[str, ...] = tuple(bought) if bought else ()
    if cart and cfg.exclude_cart:
        exclude += tuple(cart)
    # tuple.__new__ (as C statics: Final): a third of the cost of calling the named tuple (one
    # per product event).
    ask = _new(_ASK, (event.user, ts_ms, kind, product, category, previous, exclude))
    return ask, recent


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
    # Looked for first: most views miss the list, and a raised ValueError costs several
    # times the scan (compiled, about a microsecond per miss).
    if target not in ranked:
        return None
    return ranked.index(target) + 1


def index_of(items: list[str], item: str) -> int:
    """Return the index of ``item`` in ``items`` (each id at most once), or -1.

    Product ids are interned where they enter (:func:`observe`), so
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
