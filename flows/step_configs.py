"""The stateful steps' configurations, built from the settings (and the rules).

:func:`flows.journey.build_flow` builds its steps from these; tests and
benchmarks build the same logic objects without a dataflow.
"""

from __future__ import annotations

from config.settings import Settings
from flows.loop import goal_types
from flows.recommend import recommend_config
from journeyflow.event_parser import EventParser
from operators.audience import AudienceConfig
from operators.dedup import DedupConfig
from operators.journey import JourneyConfig
from operators.labels import LabelConfig
from operators.models import ModelConfig, load_models
from operators.profiles import ProfileConfig
from operators.rule_types import Rules
from operators.segments import SegmentConfig
from operators.sessions import SessionConfig
from operators.triggers import TriggerConfig

__all__ = ["event_parser", "journey_config", "label_config", "model_config", "audience_config"]


def event_parser(settings: Settings) -> EventParser:
    """Return the parser for the input contract, configured from ``settings``."""
    return EventParser(
        max_event_bytes=settings.input.max_event_bytes,
        personal_fields=tuple(settings.privacy.personal_fields),
        salt=settings.privacy.salt,
        max_dead_letter_bytes=settings.input.max_dead_letter_bytes,
    )


def journey_config(
    settings: Settings, rules: Rules, *, timers: bool, store_rows: bool = False
) -> JourneyConfig:
    """Return the per-user step's configuration from ``settings``."""
    p = settings.profiles
    return JourneyConfig(
        parser=event_parser(settings),
        dedup=DedupConfig(
            window_ms=settings.dedup.window_s * 1000,
            max_ids=settings.dedup.max_ids_per_user,
        ),
        sessions=SessionConfig(
            gap_ms=settings.sessions.gap_s * 1000,
            lateness_ms=settings.lateness.allowed_s * 1000,
            max_carted=p.max_cart_items,
        ),
        profiles=ProfileConfig(
            engagement_half_life_ms=p.engagement_half_life_s * 1000,
            affinity_half_life_ms=p.affinity_half_life_s * 1000,
            product_window_ms=p.product_window_s * 1000,
            max_products=p.max_products,
            max_categories=p.max_categories,
            max_cart_items=p.max_cart_items,
            max_purchases=p.max_purchases,
            max_sessions=p.max_sessions,
        ),
        segments=SegmentConfig(rules.profile_segments),
        triggers=TriggerConfig(rules.triggers_on("event") + rules.triggers_on("session_close")),
        refresh_ms=settings.segments.refresh_s * 1000,
        labels=label_config(settings),
        rescore_ms=settings.models.rescore_s * 1000,
        late_variables=rules.late_variables,
        timers=timers,
        store_rows=store_rows,
        goal_types=goal_types(rules),
        recommend=recommend_config(settings),
        idle_release_ms=settings.state.idle_release_s * 1000,
    )


def label_config(settings: Settings) -> LabelConfig:
    """Return when training snapshots are taken and what the scores look ahead."""
    m = settings.models
    return LabelConfig(
        interval_ms=m.example_interval_s * 1000,
        churn_horizon_ms=m.churn_horizon_s * 1000,
        purchase_horizon_ms=m.propensity_horizon_s * 1000,
        # Beyond three horizons of silence every answer is "gone": more such
        # snapshots would only teach the models what they already know.
        max_silence_ms=3 * max(m.churn_horizon_s, m.propensity_horizon_s) * 1000,
    )


def model_config(settings: Settings) -> ModelConfig:
    """Return the models step's configuration from ``settings``."""
    warm = settings.models.warm_start
    return ModelConfig(
        learning_rates={
            "propensity": settings.models.propensity_learning_rate,
            "churn": settings.models.churn_learning_rate,
        },
        clusters=settings.clusters.k,
        cluster_halflife=settings.clusters.learning_rate,
        seed=settings.models.seed,
        min_examples=settings.models.min_examples,
        stack=settings.models.stack,
        min_resolved=settings.models.min_resolved,
        engagement_half_life_ms=settings.profiles.engagement_half_life_s * 1000,
        interval_ms=settings.models.example_interval_s * 1000,
        horizons_ms={
            "propensity": settings.models.propensity_horizon_s * 1000,
            "churn": settings.models.churn_horizon_s * 1000,
        },
        # Read now, not when the flow runs: a bad file is one line at start-up.
        warm_start=load_models(settings.resolve(warm)) if warm else None,
    )


def audience_config(rules: Rules, *, store_rows: bool = False) -> AudienceConfig:
    """Return the configuration of the step that merges and publishes segments."""
    return AudienceConfig(
        segments=SegmentConfig(rules.model_segments),
        triggers=TriggerConfig(rules.triggers_on("segment_entry")),
        store_rows=store_rows,
        reads={rule.name: rule.variables for rule in rules.segments},
    )
