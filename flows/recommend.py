"""Wire the online recommender into the journeyflow dataflow.

::

    journey ─► asks, one item per batch ─► rec_catalog (one key: every product's successors, popularity)
                                                   │ answers, a list per user and batch
    models (scored updates) ───────────────────────► audience (by user, with the lists) ─► outputs

The customers' lists live in the audience step (:mod:`operators.recommend_audience`),
so that the records it publishes per user (segment changes, a replay's final
profile rows, store rows) carry the customer's list without a second per-user
step; with the recommender off, the audience step is built alone.

With ``apart`` (a replay cluster) the catalog's answers go back one item per
asking worker and batch, not one per customer, and the asks and answers are
pickled once when they cross to the other process (bytewax pickles an item
twice)::

    journey ─► RecAskBatch per batch ─► rec_catalog ─► a Parcel per asking worker ─► rec_home ─► audience
               (names a key of the asking worker)       (to that worker)            (by user, not crossing)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from config.settings import Settings
from journeyflow.errors import RuleError
from journeyflow.records import Trigger
from operators.recommend import RecAnswer, RecAsk, RecommendConfig, RecQuality
from operators.audience import AudienceConfig
from operators.recommend_audience import build_audience_lists
from operators.pickled_once import HandOut, Parcel, PickledOnce
from operators.catalog_batches import BatchedCatalog, RecAskBatch
from operators.recommend_steps import build_catalog
from operators.rule_types import Rules
from operators.rules import recommendation_payloads
from operators.unsaved import stateful, stateful_batch

__all__ = ["CATALOG_KEY", "recommend_config", "audience_with_recommendations", "routed_here", "QualitySink"]

CATALOG_KEY = "catalog"


def recommend_config(
    settings: Settings, *, store_rows: bool = False, rules: Rules | None = None
) -> RecommendConfig | None:
    """Return the recommender's configuration, or ``None`` when it is off.

    ``rules`` gives the trigger payloads over ``recommendations``; with the
    recommender off, a rule that reads it stops start-up.
    """
    r = settings.recommendations
    payloads = recommendation_payloads(rules) if rules is not None else {}
    if not r.enabled:
        if payloads:
            names = ", ".join(sorted(payloads))
            msg = f"trigger(s) {names} read recommendations; recommendations.enabled must be true"
            raise RuleError(msg)
        return None
    return RecommendConfig(
        size=r.size,
        exclude_cart=r.exclude_cart,
        window=r.window,
        decay=r.decay,
        neighbours=r.neighbours,
        max_products=r.max_products,
        max_categories=r.max_categories,
        session_gap_ms=settings.sessions.gap_s * 1000,
        popularity_half_life_ms=r.popularity_half_life_s * 1000,
        store_rows=store_rows,
        payloads=payloads,
    )


# The steps between the recommender's stateful steps are batch functions
# (flat_map_batch): one Python call per batch rather than bytewax's per-item
# shims of map/filter_map, which cost about a microsecond per item, and
# rec_to_catalog sees every record of the journey step's recommender route.


def _to_catalog(items: list[tuple[str, Any]]) -> list[tuple[str, list[RecAsk]]]:
    """Return a batch's asks as one item for the catalog step (the hop costs per item)."""
    asks = [value for _, value in items if type(value) is RecAsk]
    return [(CATALOG_KEY, asks)] if asks else []


def _to_catalog_apart(items: list[tuple[str, Any]]) -> list[tuple[str, PickledOnce[RecAskBatch]]]:
    """Return a batch's asks as one item for the catalog, naming the first of the batch's keys
    (all live on this worker: the step before emitted them here) for the answers to come back to."""
    asks = [value for _, value in items if type(value) is RecAsk]
    return [(CATALOG_KEY, PickledOnce(RecAskBatch(items[0][0], asks)))] if asks else []


def _parcels(items: list[tuple[str, Parcel]]) -> list[tuple[str, Parcel]]:
    return [(parcel.reply_to, parcel) for _, parcel in items]


def _handed_out(items: list[tuple[str, tuple[str, list[RecAnswer]]]]) -> list[tuple[str, list[RecAnswer]]]:
    return [pair for _, pair in items]


def _by_user(items: list[tuple[str, list[RecAnswer]]]) -> list[tuple[str, list[RecAnswer]]]:
    return [(answers[0].ask.user, answers) for _, answers in items]


def _quality(items: list[tuple[str, Any]]) -> list[RecQuality]:
    return [value for _, value in items if type(value) is RecQuality]


def routed_here(cfg: RecommendConfig | None, item: Any) -> bool:
    """Return whether a record of the journey step reaches the audience step to be filled in: a
    trigger whose payload reads ``recommendations``."""
    return cfg is not None and isinstance(item, Trigger) and item.rule in cfg.payloads


def audience_with_recommendations(
    cfg: RecommendConfig | None,
    audience_cfg: AudienceConfig,
    scored: KeyedStream[Any],
    journey: KeyedStream[Any],
    quality: Sink[Any] | None = None,
    *,
    snapshots: bool = True,
    apart: bool = False,
) -> KeyedStream[Any]:
    """Return the audience step over ``scored``, with the customers' lists when ``cfg`` is not None.

    ``journey`` gives the asks, and the journey step's triggers that read
    ``recommendations`` (see :func:`routed_here`), which come out of the
    audience step filled in. ``quality`` receives each customer's
    :class:`RecQuality` at the end of a replay. ``apart`` (a replay cluster,
    never resumed) sends the answers home one item per asking worker and batch.
    """
    if cfg is None:
        return stateful("audience", scored, audience_cfg.build, snapshots=snapshots)
    inputs: list[Stream[Any]] = [scored, _answers_apart(cfg, journey, snapshots) if apart else _answers(cfg, journey, snapshots)]
    if cfg.payloads:
        payloads = cfg.payloads
        inputs.append(
            op.flat_map_batch(
                "rec_triggers",
                journey,
                lambda items: [kv for kv in items if type(kv[1]) is Trigger and kv[1].rule in payloads],
            )
        )
    merged = op.merge("rec_merge", *inputs)
    # (user, UserUpdate | RecAnswer | Trigger)
    audience = _audience_lists("audience", merged, audience_cfg, cfg, snapshots)  # type: ignore[arg-type]
    # (user, SegmentChange | Tombstone | Trigger | ProfileRow | RecQuality)
    if quality is not None:
        op.output("write_rec_quality", op.flat_map_batch("rec_quality", audience, _quality), quality)
    return audience


def _answers(cfg: RecommendConfig, journey: KeyedStream[Any], snapshots: bool) -> KeyedStream[list[RecAnswer]]:
    asks = op.flat_map_batch("rec_to_catalog", journey, _to_catalog)
    # ("catalog", [RecAsk]): one item per batch, in event order
    answers = stateful_batch("rec_catalog", asks, build_catalog(cfg), snapshots=snapshots)  # type: ignore[arg-type]
    # ("catalog", [RecAnswer]): one item per customer and batch
    return op.flat_map_batch("rec_by_user", answers, _by_user)


def _answers_apart(cfg: RecommendConfig, journey: KeyedStream[Any], snapshots: bool) -> KeyedStream[list[RecAnswer]]:
    if snapshots:
        msg = "the catalog's answers sent home in parcels must run without snapshots (a replay); got snapshots instead"
        raise ValueError(msg)
    build = build_catalog(cfg)
    asks = op.flat_map_batch("rec_to_catalog", journey, _to_catalog_apart)
    # ("catalog", PickledOnce(RecAskBatch)): one item per batch and worker, in event order
    parcels = stateful_batch("rec_catalog", asks, lambda resume: BatchedCatalog(build(resume)), snapshots=False)
    # ("catalog", Parcel): one item per asking worker and batch
    home = stateful_batch("rec_home", op.flat_map_batch("rec_parcels", parcels, _parcels), lambda _: HandOut(), snapshots=False)
    # (reply_to, (user, [RecAnswer])): on the worker that asked, which keeps the customers' lists
    return op.flat_map_batch("rec_by_user", home, _handed_out)


@operator
def _audience_lists(
    step_id: str, up: KeyedStream[Any], audience_cfg: AudienceConfig, cfg: RecommendConfig, snapshots: bool
) -> KeyedStream[Any]:
    # Nested like op.stateful ("audience.stateful_batch"), the audience step's path with the
    # recommender off, so that a resumed live worker finds the audience's snapshots.
    return stateful_batch("stateful_batch", up, build_audience_lists(audience_cfg, cfg), snapshots=snapshots)


class _Sums(StatelessSinkPartition[RecQuality]):
    def __init__(self) -> None:
        self.evaluated = 0
        self.sums: dict[str, Counter[str]] = {}

    def write_batch(self, items: list[RecQuality]) -> None:
        for item in items:
            self.evaluated += item.evaluated
            for name, figures in item.hits.items():
                self.sums.setdefault(name, Counter()).update(figures)


class QualitySink(DynamicSink[RecQuality]):
    """Add up the customers' online hits; :meth:`summary` gives the replay's figures."""

    def __init__(self) -> None:
        self._parts: list[_Sums] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Sums:
        part = _Sums()
        self._parts.append(part)
        return part

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Return ``{"online" | "popularity": {hit_rate_10, mrr_10, hit_rate_20, mrr_20, evaluated}}``.

        Each product view of a customer who already had a list counts once:
        a hit when the viewed product was in the list shown before it.
        """
        evaluated = sum(part.evaluated for part in self._parts)
        out: dict[str, dict[str, float | int]] = {}
        for name in ("online", "popularity"):
            sums: Counter[str] = sum((part.sums.get(name, Counter()) for part in self._parts), Counter())
            scale = 1.0 / evaluated if evaluated else 0.0
            out[name] = {
                "hit_rate_10": round(sums["hit_10"] * scale, 4),
                "mrr_10": round(sums["rr_10"] * scale, 4),
                "hit_rate_20": round(sums["hit_20"] * scale, 4),
                "mrr_20": round(sums["rr_20"] * scale, 4),
                "evaluated": evaluated,
            }
        return out
