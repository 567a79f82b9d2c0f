"""The journeyflow dataflow: one definition for replays and the live worker.

Only the inputs and the sinks differ between a replay and the live worker;
every operator in between is the same. The pipeline::

    inputs ─► devices (per anonymous id) ─► journey (per customer) ─► models (one, global) ─► audience (per user)
                 │  a not-yet-linked visitor     │  its own events, and what          │
                 │  is handled here in full;     │  the devices forward               │
                 │  at login its state is        │                     segment changes, triggers,
                 │  handed to the customer       │                     holdouts, profiles, store
                 └───────────────────────────────┴─► sessions, dead letters, triggers, store rows,
                                                     tallies, identity merges

Shape comments after each step say what flows: ``# (user, Event)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from config.settings import Settings
from flows.loop import close_loop
from flows.models_hop import models_hop
from flows.recommend import audience_with_recommendations, recommend_config, routed_here
from flows.routing import is_a, route, values
from flows.step_configs import audience_config, journey_config
from flows.store_state import StoreStateConfig, store_state
from journeyflow import metrics
from journeyflow.errors import ConfigError
from journeyflow.events import DeadLetter
from journeyflow.records import (
    IdentityMerge,
    ProfileRow,
    SegmentChange,
    SessionSummary,
    Tombstone,
    Trigger,
)
from journeyflow.step_records import Forward, Tally, UserUpdate
from operators.goals import GoalEvent
from operators.identity import DeviceConfig, device_key, to_device
from operators.in_order import in_input_order
from operators.journey import Inbound
from operators.recommend import RecAsk, RecommendConfig
from operators.rule_types import Rules
from operators.rules import check_clusters, load_rules
from operators.unsaved import stateful

__all__ = ["MODELS_KEY", "Inputs", "Outputs", "build_flow", "read_rules"]

MODELS_KEY = "models"

Inputs = Callable[[Dataflow], tuple[KeyedStream[Inbound], Stream[DeadLetter] | None]]
"""Adds the input steps to a flow; returns events keyed by user, and the dead
letters found before keying (``None`` when parsing happens in the per-user step)."""


@dataclass(frozen=True)
class Outputs:
    """Where each kind of record goes.

    ``profiles`` (a replay's final profiles), ``store`` (Redis) and
    ``tallies`` (a replay's counts) are optional: ``None`` means the flow does
    not produce that output at all.
    """

    sessions: Sink[Any]
    dead_letters: Sink[Any]
    segment_changes: Sink[Any]
    triggers: Sink[Any]
    holdouts: Sink[Any]
    profiles: Sink[Any] | None = None
    store: Sink[Any] | None = None
    tallies: Sink[Any] | None = None
    models: Sink[Any] | None = None
    """Receives the :class:`ModelReport` at the end of the input."""
    conversions: Sink[Any] | None = None
    """Receives each :class:`~operators.loop_records.Conversion` (``None``: not written)."""
    loop_report: Sink[Any] | None = None
    """Receives the :class:`~operators.loop_records.LoopReport` (uplift) at the end of the input."""
    recommendations: Sink[Any] | None = None
    """Receives the recommender's online quality figures at the end of the input."""


def _journey_routes(recommend: RecommendConfig | None) -> list[tuple[str, Callable[[Any], bool]]]:
    """Return where the journey step's records go, most frequent kinds first (see :mod:`flows.routing`).

    Triggers and goal events share one route, so that a user's goal events
    reach the loop step in order with the user's triggers.
    """
    routes: list[tuple[str, Callable[[Any], bool]]] = []
    if recommend is not None:
        # A view's ask is about half of all records; triggers whose payload
        # reads recommendations go through the audience step's lists too.
        if recommend.payloads:
            routes.append(("recommender", lambda kv: type(kv[1]) is RecAsk or routed_here(recommend, kv[1])))
        else:
            routes.append(("recommender", is_a(RecAsk)))
    return routes + [
        ("models", is_a(UserUpdate)),
        ("sessions", is_a(SessionSummary)),
        ("loop", is_a(Trigger, GoalEvent)),
        ("merges", is_a(IdentityMerge)),
        ("tallies", is_a(Tally)),
        ("rows", is_a(ProfileRow)),
        ("dead_letters", is_a(DeadLetter)),
    ]


def _is_published(record: Any) -> bool:
    # Tombstones of merges and opt-outs only tell the store; erasures are published.
    return type(record) is SegmentChange or (type(record) is Tombstone and record.reason == "forget")


def _is_final_profile(record: Any) -> bool:
    return type(record) is ProfileRow and record.final


def _keep(step_id: str, up: Stream[Any], test: Callable[[Any], bool]) -> Stream[Any]:
    """Keep the items passing ``test`` (one comprehension per batch)."""
    return op.flat_map_batch(step_id, up, lambda items: [item for item in items if test(item)])


def _count_dead_letter(step_id: str, item: DeadLetter) -> None:
    metrics.DEAD_LETTERS.labels(reason=item.code).inc()
    if item.code == "late":
        metrics.LATE_EVENTS.inc()


def _count_trigger(step_id: str, item: Trigger) -> None:
    metrics.TRIGGERS.labels(rule=item.rule, variant=item.variant).inc()


def _count_session(step_id: str, item: SessionSummary) -> None:
    metrics.SESSIONS_CLOSED.inc()


def _count_change(step_id: str, item: SegmentChange | Tombstone) -> None:
    if isinstance(item, SegmentChange):
        for segment in item.entered:
            metrics.SEGMENT_ENTRIES.labels(segment=segment).inc()
        for segment in item.exited:
            metrics.SEGMENT_EXITS.labels(segment=segment).inc()


def read_rules(settings: Settings) -> Rules:
    """Return the compiled rules; a file that cannot be read is a ``ConfigError``."""
    path = settings.rules_path
    try:
        return load_rules(path)
    except IsADirectoryError as ex:
        msg = f"segments.rules_file {str(path)!r} cannot be read: it is a directory"
        raise ConfigError(msg) from ex
    except PermissionError as ex:
        msg = f"segments.rules_file {str(path)!r} cannot be read: {ex.strerror}"
        raise ConfigError(msg) from ex
    except UnicodeDecodeError as ex:
        msg = f"segments.rules_file {str(path)!r} must be UTF-8 TOML; got invalid UTF-8 at byte {ex.start}"
        raise ConfigError(msg) from ex


def build_flow(
    settings: Settings,
    inputs: Inputs,
    outputs: Outputs,
    *,
    live: bool,
    rules: Rules | None = None,
    flow_id: str = "journeyflow",
    models_key: str = MODELS_KEY,
    models_apart: bool = False,
) -> Dataflow:
    """Return the dataflow for the live worker (``live``) or a replay.

    Live, timers close sessions and re-evaluate segments as time passes, and
    profile rows go to the store as they change. A replay judges time by
    event time alone (deterministic) and writes each user's final profile.

    Renaming a step or ``flow_id`` makes bytewax recovery lose that step's
    state: keep them stable (and ``models_key``, the models step's one key,
    for the live worker; a replay cluster places it on a worker of its
    choice, :func:`flows.replay_shares.placed_key`). ``models_apart`` (a
    replay cluster) sends the models compact asks and joins their scores
    back to the updates kept on their workers (:mod:`flows.models_hop`),
    and sends the recommender's answers and the loop's inputs one item per
    worker and batch (:mod:`flows.recommend`, :mod:`flows.loop`).
    """
    rules = rules if rules is not None else read_rules(settings)
    check_clusters(rules, settings.clusters.k)
    # Only the live worker can be resumed: a replay's snapshots would never be read (operators/unsaved.py).
    snapshots = live
    store_rows = outputs.store is not None
    flow = Dataflow(flow_id)
    events, early_dead = inputs(flow)
    # (user, Event | Tick), DeadLetter | None
    journey_cfg = journey_config(settings, rules, timers=live, store_rows=store_rows and live)
    routed = op.branch("route_identity", events, lambda kv: to_device(kv[1]))
    device_in = op.map("key_by_device", routed.trues, lambda kv: (device_key(kv[1]), kv[1]))
    # (anonymous id, Event | Tick): anonymous events, logins, unlinked devices' time
    device_cfg = DeviceConfig(journey_cfg, link_idle_ms=settings.identity.link_idle_s * 1000, release_at_eof=not live)
    devices = stateful("devices", device_in, device_cfg.build, snapshots=snapshots)
    # (anonymous id, Forward | what the journey step emits, for an unlinked visitor | IdentityMerge)
    handed = op.branch("split_forwards", devices, lambda kv: isinstance(kv[1], Forward))
    forwarded = op.map("key_by_customer", handed.trues, lambda kv: (kv[1].user, kv[1].item))
    customer_in = op.merge("customer_inputs", routed.falses, forwarded)
    # (user, Event | Tick | Handoff), applied in input order
    # A replay sends placeholders for what comes through the devices (flows/replay_clock.py).
    customers = in_input_order("journey", customer_in, journey_cfg.build, placeholders=not live, snapshots=snapshots)
    journey = op.merge("journeys", handed.falses, customers)
    # (user, RecAsk | UserUpdate | SessionSummary | Trigger | GoalEvent | IdentityMerge | Tally | ProfileRow | DeadLetter)
    recommend_cfg = recommend_config(settings, store_rows=store_rows and live, rules=rules)
    by_kind = route("route_journey", journey, _journey_routes(recommend_cfg))
    updates = by_kind["models"]
    # (user, UserUpdate)
    scored, model_report = models_hop(settings, updates, models_key=models_key, apart=models_apart, snapshots=snapshots)
    # (user, UserUpdate with scores): one global key, so the models learn from everyone; back to each user
    asks = by_kind["recommender"] if "recommender" in by_kind else journey
    audience_cfg = audience_config(rules, store_rows=store_rows)
    audience = audience_with_recommendations(
        recommend_cfg, audience_cfg, scored, asks, outputs.recommendations, snapshots=snapshots, apart=models_apart
    )
    # (user, SegmentChange | Tombstone | Trigger | ProfileRow), with each customer's recommendations
    published_by_kind = route(
        "route_audience", audience, [("records", is_a(ProfileRow, SegmentChange, Tombstone)), ("loop", is_a(Trigger))]
    )
    records = values("audience_records", published_by_kind["records"])
    # ProfileRow | SegmentChange | Tombstone, in the order the audience step emitted them
    if outputs.models is not None:
        op.output("write_model_report", values("model_report", model_report), outputs.models)

    closed = op.inspect("count_sessions", values("sessions", by_kind["sessions"]), _count_session)
    op.output("write_sessions", closed, outputs.sessions)
    dead = values("late", by_kind["dead_letters"])
    if early_dead is not None:
        dead = op.merge("dead_letters", early_dead, dead)
    op.output("write_dead_letters", op.inspect("count_dead_letters", dead, _count_dead_letter), outputs.dead_letters)
    # Triggers whose payload reads recommendations reach the loop from the recommender's step instead.
    fired = close_loop(
        settings,
        rules,
        by_kind["loop"],
        updates,
        published_by_kind["loop"],
        by_kind["merges"],
        outputs.conversions,
        outputs.loop_report,
        snapshots=snapshots,
        apart=models_apart,
    )
    # Trigger, variant chosen (flows/loop.py)
    fired = op.inspect("count_triggers", fired, _count_trigger)
    split = op.branch("split_holdouts", fired, lambda t: t.variant != "holdout")
    op.output("write_triggers", split.trues, outputs.triggers)
    op.output("write_holdouts", split.falses, outputs.holdouts)
    merges = values("merges", by_kind["merges"])
    published = op.merge("changes_and_merges", _keep("published", records, _is_published), merges)
    op.output(
        "write_segment_changes", op.inspect("count_segment_changes", published, _count_change), outputs.segment_changes
    )
    if outputs.profiles is not None:
        op.output("write_profiles", _keep("final_profiles", records, _is_final_profile), outputs.profiles)
    if outputs.store is not None:
        rows = op.merge("store_records", values("journey_rows", by_kind["rows"]), records, merges)
        if live and settings.redis.repair_check_s > 0:
            # Keeps each user's hash as state, to rewrite it if Redis loses data.
            repair = StoreStateConfig(settings.redis.repair_check_s, settings.redis.profile_ttl_s)
            rows = store_state("store_state", rows, repair)
        op.output("write_store", rows, outputs.store)
    if outputs.tallies is not None:
        op.output("write_tallies", values("tallies", by_kind["tallies"]), outputs.tallies)
    return flow
