"""The catalog step in a replay cluster: one item of asks in per worker and batch, one parcel of answers out.

In one process the catalog step (:class:`~operators.recommend_steps.CatalogLogic`)
takes each worker's list of asks and sends each customer one list of
answers. In a cluster the catalog lives on one worker, so the answers of the
other process's customers cross between processes. Here each worker's asks
of a batch come as one :class:`RecAskBatch` and its customers' answers go back
as one :class:`~operators.pickled_once.Parcel` (see :mod:`flows.recommend`).

A parcel that crosses is pickled packed (:data:`ANSWERS`): each answer as
plain tuples, not as its three named tuples (:class:`~operators.recommend.RecAnswer`,
:class:`~operators.recommend.RecAsk`, :class:`~operators.recommend.Found`),
whose pickling calls an interpreted ``__getnewargs__`` each, and whose
unpickling calls each class's interpreted ``__new__``. The receiving side
rebuilds the same named tuples. A parcel that stays in its process is never
packed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from bytewax.operators import StatefulBatchLogic

from operators.pickled_once import Packing, Parcel, PickledOnce
from operators.recommend import Found, RecAnswer, RecAsk
from operators.recommend_steps import CatalogLogic

__all__ = ["RecAskBatch", "BatchedCatalog", "ANSWERS", "pack_answers", "unpack_answers"]

# Named tuples built with tuple.__new__: no call of the class's interpreted __new__. Final, as
# the named tuples' aliases: compiled, C statics, not look-ups in the module's dict at each use.
_new: Final = tuple.__new__
_ANSWER: Final = RecAnswer
_ASK: Final = RecAsk
_FOUND: Final = Found


def pack_answers(items: list[tuple[str, list[RecAnswer]]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Return a parcel's ``(customer, answers)`` with each answer as plain tuples."""
    packed: list[tuple[str, list[tuple[Any, ...]]]] = []
    for user, answers in items:
        rows: list[tuple[Any, ...]] = []
        for answer in answers:
            rows.append((tuple(answer[0]), tuple(answer[1]), answer[2], answer[3], answer[4]))
        packed.append((user, rows))
    return packed


def unpack_answers(packed: list[tuple[str, list[tuple[Any, ...]]]]) -> list[tuple[str, list[RecAnswer]]]:
    """Return the parcel :func:`pack_answers` packed, its answers the same named tuples again."""
    items: list[tuple[str, list[RecAnswer]]] = []
    for user, rows in packed:
        answers: list[RecAnswer] = []
        for ask, found, popular, in_category, rank in rows:
            answers.append(_new(_ANSWER, (_new(_ASK, ask), _new(_FOUND, found), popular, in_category, rank)))
        items.append((user, answers))
    return items


ANSWERS: Final = Packing(pack_answers, unpack_answers)
"""How a parcel of answers crosses between processes."""


class RecAskBatch(NamedTuple):
    """One worker's asks of one batch, and a key of that worker's the answers go back under."""

    reply_to: str
    asks: list[RecAsk]


class BatchedCatalog(StatefulBatchLogic[PickledOnce[RecAskBatch], Parcel, None]):
    """The catalog step of a replay cluster: emits one :class:`Parcel` per asking worker and batch.

    The asks are answered as :class:`CatalogLogic` answers them (all of a
    batch's asks in arrival order, each customer's answers in one list); each
    customer's list then goes back in one parcel with the others of the
    worker that asked, rather than as one item per customer.
    """

    def __init__(self, inner: CatalogLogic) -> None:
        self.inner = inner

    def on_batch(self, values: list[PickledOnce[RecAskBatch]]) -> tuple[Iterable[Parcel], bool]:
        home: dict[str, str] = {}
        asks: list[RecAsk] = []
        for value in values:
            batch = value.value
            asks.extend(batch.asks)
            reply_to = batch.reply_to
            for ask in batch.asks:
                home[ask.user] = reply_to
        parcels: dict[str, list[tuple[str, Any]]] = {}
        for user, answers in self.inner.answers(asks).items():
            reply_to = home[user]
            listed = parcels.get(reply_to)
            if listed is None:
                parcels[reply_to] = [(user, answers)]
            else:
                listed.append((user, answers))
        return [Parcel(r, PickledOnce(items, ANSWERS)) for r, items in parcels.items()], StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        # Only a replay cluster runs this step, and replays are never resumed.
        return None
