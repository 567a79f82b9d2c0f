"""The recommender's product side split by product shard (the flow's path before the catalog).

:func:`split` turns a batch of asks into one item of work per product shard,
in event order, numbered (``order``), and :class:`ShardLogic` (keyed by
``crc32(product) % shards``) learns the pairs whose source is in its shard
and finds the successors of its products, in that order, so a product
answers with what it learned before the event, never after. The flow now
runs the product side as one step (:class:`operators.recommend_steps.CatalogLogic`,
which uses the same :func:`operators.recommend_scores.learn` and
:func:`operators.recommend_scores.successors`); this path is kept for the
parts benchmark (``scripts/bench_parts.py``) and the snapshots of live
workers from before. Product state holds product ids and weights only.
Memory: each shard keeps at most ``max_products / shards`` products with at
most ``2 * neighbours`` successors each.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.operators import StatefulBatchLogic

from operators import recommend as rec
from operators.recommend import Found, RecAsk, RecommendConfig, ShardWork
from operators.recommend_scores import learn, successors
from state.serde import decode_state, encode_state

__all__ = ["batch_order", "split", "ShardState", "ShardLogic", "build_shard"]

# The records are named tuples built with tuple.__new__: a third of the cost
# of calling the class, and one is made per product event.
_new = tuple.__new__

#: Room for a batch's asks below a batch's number in ``order`` (see :func:`batch_order`).
_BATCH_BITS = 32


def batch_order() -> int:
    """Return the ``order`` of a batch's first ask: later batches get larger numbers.

    A monotonic clock, not a counter: the split keeps no state, and batches
    a worker splits one after the other are microseconds apart at least.
    """
    return time.monotonic_ns() << _BATCH_BITS


def split(cfg: RecommendConfig, asks: list[RecAsk], first: int, *, count: bool = True) -> dict[str, list[ShardWork]]:
    """Return a batch of asks as each shard's work, in event order, numbered from ``first``.

    "Learn ``c`` after ``b``" goes to ``b``'s shard, "what follows ``c``?"
    to ``c``'s (with the pairs that shard learns first). Not ``count``:
    nothing is learned, the question is only asked.
    """
    by_shard: dict[str, list[ShardWork]] = {}
    shards = cfg.shards
    # Product -> shard key for this batch: a dict lookup rather than a call of the cached
    # shard_of per product (an ask names up to window + 1 products).
    known: dict[str, str] = {}
    order = first
    for ask in asks:
        product = ask.product
        if product is None:
            by_shard.setdefault("rec:0", []).append(_new(ShardWork, ("rec:0", (), ask, order)))
            order += 1
            continue
        if not count:
            ask = ask._replace(previous=())
        home = known.get(product)
        if home is None:
            home = known[product] = rec.shard_of(product, shards)
        own: list[tuple[str, str, float]] = []
        for distance, source in enumerate(ask.previous, start=1):
            shard = known.get(source)
            if shard is None:
                shard = known[source] = rec.shard_of(source, shards)
            pair = (source, product, 1.0 / distance)
            if shard == home:
                own.append(pair)
            else:
                _append(by_shard, shard, _new(ShardWork, (shard, (pair,), None, order)))
        _append(by_shard, home, _new(ShardWork, (home, tuple(own), ask, order)))
        order += 1
    return by_shard


def _append(by_shard: dict[str, list[ShardWork]], shard: str, work: ShardWork) -> None:
    # Not setdefault(shard, []): that makes an empty list per call, kept or not.
    listed = by_shard.get(shard)
    if listed is None:
        by_shard[shard] = [work]
    else:
        listed.append(work)


@dataclass(slots=True)
class ShardState:
    """The products of one shard and their successors."""

    version: int = 2
    table: dict[str, list[Any]] = field(default_factory=dict)


class ShardLogic(StatefulBatchLogic[list[ShardWork], list[Found], bytes]):
    """Learn the pairs whose source is in this shard; find the successors of its products.

    Each item is a batch's work for this shard, in event order: a product
    answers with what it had learned before the event, never after. What it
    found goes out as one list per batch (to the popularity step).
    """

    def __init__(self, cfg: RecommendConfig, state: ShardState) -> None:
        self.cfg = cfg
        self.state = state

    def on_batch(self, values: list[list[ShardWork]]) -> tuple[Iterable[list[Found]], bool]:
        out: list[Found] = []
        table = self.state.table
        cfg = self.cfg
        for works in values:
            for _, pairs, ask, order in works:
                for source, successor, weight in pairs:
                    learn(table, cfg, source, successor, weight)
                if ask is not None:
                    found = successors(table, ask.product) if ask.product is not None else ()
                    out.append(_new(Found, (order, ask, found)))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def on_item(self, value: ShardWork) -> tuple[Iterable[list[Found]], bool]:
        """Handle one event's work outside a dataflow."""
        return self.on_batch([[value]])

    def snapshot(self) -> bytes:
        return encode_state(self.state)


def build_shard(cfg: RecommendConfig) -> Any:
    """Return the product step's builder."""
    return lambda resume: ShardLogic(cfg, ShardState() if resume is None else decode_state(resume, ShardState))
