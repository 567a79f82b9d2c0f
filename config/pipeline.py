"""The settings sections of the pipeline's steps: ``[input]`` and the per-user concerns
(dedup, lateness, sessions, identity, profiles, segments, privacy, models, clusters,
conversions, recommendations).

Part of :class:`config.settings.Settings`; see :mod:`config.settings` for how they load.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.fields import masked_repr, non_negative, positive, setting, share

__all__ = [
    "InputSettings",
    "DedupSettings",
    "LatenessSettings",
    "SessionSettings",
    "IdentitySettings",
    "ProfileSettings",
    "RecommendationSettings",
    "SegmentSettings",
    "PrivacySettings",
    "ModelSettings",
    "ClusterSettings",
    "ConversionSettings",
]


@dataclass(frozen=True)
class InputSettings:
    max_event_bytes: int = setting(positive)
    """Larger messages are dead letters. Env: JOURNEYFLOW_INPUT_MAX_EVENT_BYTES."""
    max_dead_letter_bytes: int = setting(lambda v: None if v >= 1024 else "must be >= 1024")
    """Bound of a dead letter's JSON record (a longer message keeps a prefix, its
    length and its digest). Env: JOURNEYFLOW_INPUT_MAX_DEAD_LETTER_BYTES."""


@dataclass(frozen=True)
class DedupSettings:
    window_s: int = setting(positive)
    """Event-time window for duplicate event ids. Env: JOURNEYFLOW_DEDUP_WINDOW_S."""
    max_ids_per_user: int = setting(positive)
    """Cap on remembered ids per user. Env: JOURNEYFLOW_DEDUP_MAX_IDS_PER_USER."""


@dataclass(frozen=True)
class LatenessSettings:
    allowed_s: int = setting(non_negative)
    """How far behind a user's latest event an event may be. Env: JOURNEYFLOW_LATENESS_ALLOWED_S."""


@dataclass(frozen=True)
class SessionSettings:
    gap_s: int = setting(positive)
    """Inactivity that ends a session. Env: JOURNEYFLOW_SESSIONS_GAP_S."""


@dataclass(frozen=True)
class IdentitySettings:
    link_idle_s: int = setting(positive)
    """Event time without an event of a linked device after which its link is
    forgotten (and its later events start a new anonymous profile).
    Env: JOURNEYFLOW_IDENTITY_LINK_IDLE_S."""


@dataclass(frozen=True)
class ProfileSettings:
    engagement_half_life_s: int = setting(positive)
    affinity_half_life_s: int = setting(positive)
    product_window_s: int = setting(positive)
    max_products: int = setting(positive)
    max_categories: int = setting(positive)
    max_cart_items: int = setting(positive)
    max_purchases: int = setting(positive)
    max_sessions: int = setting(positive)


@dataclass(frozen=True)
class RecommendationSettings:
    """The online recommender (``operators/recommend.py``)."""

    enabled: bool = setting()
    """Learn and publish recommendations. Env: JOURNEYFLOW_RECOMMENDATIONS_ENABLED."""
    size: int = setting(lambda v: None if 1 <= v <= 20 else "must be between 1 and 20")
    """Products per list. Env: JOURNEYFLOW_RECOMMENDATIONS_SIZE."""
    exclude_cart: bool = setting()
    """Leave out what is in the cart. Env: JOURNEYFLOW_RECOMMENDATIONS_EXCLUDE_CART."""
    window: int = setting(lambda v: None if 1 <= v <= 10 else "must be between 1 and 10")
    decay: float = setting(lambda v: None if 0 <= v < 1 else "must be >= 0 and < 1")
    neighbours: int = setting(positive)
    max_products: int = setting(positive)
    max_categories: int = setting(positive)
    popularity_half_life_s: int = setting(positive)


@dataclass(frozen=True)
class SegmentSettings:
    rules_file: str = setting()
    """Segment and trigger rules. Env: JOURNEYFLOW_SEGMENTS_RULES_FILE."""
    refresh_s: int = setting(positive)
    """Re-evaluation interval for time-driven segments. Env: JOURNEYFLOW_SEGMENTS_REFRESH_S."""


@dataclass(frozen=True, repr=False)
class PrivacySettings:
    personal_fields: list[str] = setting()
    salt: str = setting(lambda v: None if v else "must not be empty", secret=True)
    """Key of the personal-data hash (the content of ``salt_file`` when that is set).
    Env: JOURNEYFLOW_PRIVACY_SALT."""
    salt_file: str = setting()
    """File holding the salt (trailing newline ignored); empty for none. Env: JOURNEYFLOW_PRIVACY_SALT_FILE."""
    allow_default_salt: bool = setting()
    """Let ``journeyflow run`` start with the shipped salt (demos only).
    Env: JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT."""

    __repr__ = masked_repr


@dataclass(frozen=True)
class ModelSettings:
    propensity_horizon_s: int = setting(positive)
    churn_horizon_s: int = setting(positive)
    example_interval_s: int = setting(positive)
    rescore_s: int = setting(positive)
    propensity_learning_rate: float = setting(positive)
    churn_learning_rate: float = setting(positive)
    min_examples: int = setting(non_negative)
    """No score until a model has learned from this many examples. Env: JOURNEYFLOW_MODELS_MIN_EXAMPLES."""
    stack: bool = setting()
    """Publish each task's stack fitted to the horizon's outcomes. Env: JOURNEYFLOW_MODELS_STACK."""
    min_resolved: int = setting(non_negative)
    """Resolved 30-day grid moments per task before its stack publishes. Env: JOURNEYFLOW_MODELS_MIN_RESOLVED."""
    seed: int = setting()
    warm_start: str = setting()
    """Model state exported by a replay (models.bin) to start from; empty for none.
    Env: JOURNEYFLOW_MODELS_WARM_START."""


@dataclass(frozen=True)
class ClusterSettings:
    k: int = setting(positive)
    learning_rate: float = setting(share)
    """Share of the way the nearest centre moves towards each point (River's ``halflife``;
    the old key ``halflife`` is a deprecated alias). Env: JOURNEYFLOW_CLUSTERS_LEARNING_RATE."""


@dataclass(frozen=True)
class ConversionSettings:
    """The closed loop (``operators/loop.py``): following triggers to their conversions."""

    reorder_s: int = setting(non_negative)
    """Goal events are kept this long in event time, and a trigger is judged this long
    after its window: triggers that come through the models arrive behind the events
    that followed them. Default 86400; ``JOURNEYFLOW_CONVERSIONS_REORDER_S``."""
    max_goal_events_per_user: int = setting(positive)
    """At most this many recent goal events kept per user (default 4;
    ``JOURNEYFLOW_CONVERSIONS_MAX_GOAL_EVENTS_PER_USER``)."""
    seed: int = setting()
    """Seed of the variant bandits (default 42; ``JOURNEYFLOW_CONVERSIONS_SEED``)."""
