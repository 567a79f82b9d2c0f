"""Load journeyflow's settings once, validated and frozen.

Sources, later ones winning: ``config/default.toml`` (which holds every
default), the file given with ``--config`` (or ``JOURNEYFLOW_CONFIG``), then
environment variables named ``JOURNEYFLOW_<SECTION>_<KEY>``. Unknown keys and
values of the wrong type or out of range stop start-up with a message naming
the key, the value and what is allowed. Operators receive only their section.

The sections are declared here, those of the services the worker connects to in
:mod:`config.connections`; :mod:`config.fields` declares a field (its check, whether it is
secret), :mod:`config.loading` reads files and the environment, and :mod:`config.checks`
checks what must agree across sections and resolves secret files.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from config.checks import check_security, cross_check, resolve_files
from config.connections import KafkaSettings, OutageSettings, RedisSettings
from config.fields import masked_repr, non_negative, one_of, positive, setting, share, shown_value
from config.loading import DEFAULT_CONFIG, ENV_PREFIX, build, from_env, merge, read_toml
from journeyflow.errors import ConfigError

__all__ = [
    "Settings",
    "InputSettings",
    "DedupSettings",
    "LatenessSettings",
    "SessionSettings",
    "IdentitySettings",
    "ProfileSettings",
    "SegmentSettings",
    "PrivacySettings",
    "ModelSettings",
    "ClusterSettings",
    "RecoverySettings",
    "ReplaySettings",
    "StateSettings",
    "RunSettings",
    "ConversionSettings",
    "LoggingSettings",
    "RecommendationSettings",
    "load_settings",
    "masked",
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
class RecoverySettings:
    dir: str = setting()
    """Recovery directory; empty for none. Env: JOURNEYFLOW_RECOVERY_DIR."""
    partitions: int = setting(positive)
    snapshot_s: float = setting(positive)
    backup_s: float = setting(non_negative)


@dataclass(frozen=True)
class ReplaySettings:
    tick_s: int = setting(positive)
    """Event time between a replay's ticks (its stand-in for timers). Env: JOURNEYFLOW_REPLAY_TICK_S."""
    tick_window_s: int = setting(positive)
    """Users seen within this long get ticks. Env: JOURNEYFLOW_REPLAY_TICK_WINDOW_S."""


@dataclass(frozen=True)
class StateSettings:
    idle_release_s: int = setting(non_negative)
    """A user idle this long (event time; the user's clock live) publishes a final row and
    is forgotten; 0: never. Env: JOURNEYFLOW_STATE_IDLE_RELEASE_S."""


@dataclass(frozen=True)
class RunSettings:
    workers: int = setting(positive)
    epoch_s: float = setting(positive)
    metrics_port: int = setting(lambda v: None if 0 <= v < 65536 else "must be a port number")
    metrics_address: str = setting(lambda v: None if v.strip() else "must be an address to bind")
    """Address the metrics server binds to. Env: JOURNEYFLOW_RUN_METRICS_ADDRESS."""


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


@dataclass(frozen=True)
class LoggingSettings:
    level: str = setting(one_of("debug", "info", "warning", "error"))
    """Lowest level logged (``-v`` lowers it to info, ``-vv`` to debug). Env: JOURNEYFLOW_LOGGING_LEVEL."""


@dataclass(frozen=True)
class Settings:
    """Every setting of journeyflow, one frozen section per concern."""

    input: InputSettings
    dedup: DedupSettings
    lateness: LatenessSettings
    sessions: SessionSettings
    identity: IdentitySettings
    profiles: ProfileSettings
    segments: SegmentSettings
    privacy: PrivacySettings
    models: ModelSettings
    clusters: ClusterSettings
    kafka: KafkaSettings
    redis: RedisSettings
    recovery: RecoverySettings
    replay: ReplaySettings
    state: StateSettings
    run: RunSettings
    conversions: ConversionSettings
    logging: LoggingSettings
    outages: OutageSettings
    recommendations: RecommendationSettings
    config_dir: Path = DEFAULT_CONFIG.parent
    """Folder of the last config file read; relative paths resolve against it."""

    def resolve(self, name: str) -> Path:
        """Return a path setting: as given if it exists from here, else from the config folder."""
        path = Path(name)
        if path.is_absolute() or path.exists():
            return path
        return self.config_dir / path

    @property
    def rules_path(self) -> Path:
        """Return the rules file (see :meth:`resolve`)."""
        return self.resolve(self.segments.rules_file)


_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in fields(Settings) if f.name != "config_dir"
}


def load_settings(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Return validated settings from the defaults, ``path``, ``env`` and ``overrides``.

    ``overrides`` (``{"sessions": {"gap_s": 60}}``) wins over everything; the
    command line uses it for flags such as ``--workers``.

    >>> load_settings(env={}).sessions.gap_s
    1800
    >>> load_settings(env={"JOURNEYFLOW_SESSIONS_GAP_S": "60"}).sessions.gap_s
    60
    """
    env = os.environ if env is None else env
    merged = read_toml(DEFAULT_CONFIG)
    config_dir = DEFAULT_CONFIG.parent
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            msg = f"config file {str(path)!r} does not exist"
            raise ConfigError(msg)
        merge(merged, read_toml(path), str(path), _SECTIONS)
        config_dir = path.resolve().parent
    merge(merged, from_env(env, _SECTIONS), "the environment", _SECTIONS)
    if overrides:
        merge(merged, {k: dict(v) for k, v in overrides.items()}, "the command line", _SECTIONS)
    sections = {name: build(name, cls, merged.get(name, {})) for name, cls in _SECTIONS.items()}
    settings = Settings(**sections, config_dir=config_dir)
    cross_check(settings)
    settings = resolve_files(settings)
    check_security(settings)
    return settings


def masked(settings: Settings) -> dict[str, dict[str, Any]]:
    """Return every setting by section, secrets replaced by ``***`` (for printing).

    >>> masked(load_settings(env={"JOURNEYFLOW_PRIVACY_SALT": "pepper"}))["privacy"]["salt"]
    '***'
    """
    return {
        name: {f.name: shown_value(getattr(settings, name), f.name) for f in fields(getattr(settings, name))}
        for name in _SECTIONS
    }
