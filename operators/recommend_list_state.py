"""The lists step's stored state: one customer's candidate scores and list, and its former layout.

Split from :mod:`operators.recommend_lists` (the logic that keeps it), which
re-exports :class:`ListState`: snapshots written before the split name the
class there, and resume through that name (:mod:`state.portable` looks a
layout's class up by module and name).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Final

from journeyflow.records import ProfileRow
from operators.recommend_hits import sums_of

__all__ = ["ListState", "current"]

#: The former layout's hit sums (snapshots before version 5: dicts of boxed floats); shared and
#: never written in a state of today's layout. Final: compiled, a C static (every new state reads
#: it), not a look-up in the module's dict.
_FORMER_HITS: Final[dict[str, dict[str, float]]] = {}


@dataclass(slots=True, init=False)
class ListState:
    """One customer's candidate scores and list.

    The fields are the stored layout (snapshots); ``__init__`` is written out
    because, compiled, a dataclass's generated one runs interpreted (one
    state per customer with a list, and per erasure). Version 5 keeps the
    hit sums packed, in a field added at the end (so a snapshot of version 4
    still loads: :func:`current` converts it); the former ``hits`` then
    stays empty.
    """

    version: int = 5
    scores: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    """Weight of the latest product's successors in ``scores`` (forward decay, see :func:`operators.recommend_scores.blend`)."""
    exclude: tuple[str, ...] = ()
    """What the list leaves out as of the last answer: bought, in the cart, being looked at
    (a few products: a tuple is cheaper to keep than a set to build at every answer)."""
    fill: tuple[tuple[str, ...], ...] = ()
    """The popular products (in the category, then overall) that fill the list up."""
    last_ms: int | None = None
    erased_ms: int | None = None
    """Time of the last tombstone: answers to earlier events are ignored."""
    final: ProfileRow | None = None
    """A replay's final profile row, held until the end of the input."""
    evaluated: int = 0
    hits: dict[str, dict[str, float]] = field(default_factory=lambda: _FORMER_HITS)
    """Before version 5 only: the hit sums."""
    sums: array[float] | None = None
    """The online hit sums (:func:`operators.recommend_hits.add_hits`); None until the first hit."""

    def __init__(
        self,
        version: int = 5,
        scores: dict[str, float] | None = None,
        scale: float = 1.0,
        exclude: tuple[str, ...] = (),
        fill: tuple[tuple[str, ...], ...] = (),
        last_ms: int | None = None,
        erased_ms: int | None = None,
        final: ProfileRow | None = None,
        evaluated: int = 0,
        sums: array[float] | None = None,
    ) -> None:
        self.version = version
        self.scores = {} if scores is None else scores
        self.scale = scale
        self.exclude = exclude
        self.fill = fill
        self.last_ms = last_ms
        self.erased_ms = erased_ms
        self.final = final
        self.evaluated = evaluated
        self.hits = _FORMER_HITS
        self.sums = sums


def current(state: ListState) -> ListState:
    """Return ``state`` in today's layout: a snapshot of version 4 (hit sums in dicts)
    converted in place, the same sums."""
    if state.version >= 5:
        return state
    state.sums = sums_of(state.hits)
    state.hits = _FORMER_HITS
    state.version = 5
    return state
