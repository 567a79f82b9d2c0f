"""Load journeyflow's settings once, validated and frozen.

Sources, later ones winning: ``config/default.toml`` (which holds every
default), the file given with ``--config`` (or ``JOURNEYFLOW_CONFIG``), then
environment variables named ``JOURNEYFLOW_<SECTION>_<KEY>``. Unknown keys and
values of the wrong type or out of range stop start-up with a message naming
the key, the value and what is allowed. Operators receive only their section.
"""

from __future__ import annotations

import logging
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from journeyflow.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "Settings",
    "InputSettings",
    "DedupSettings",
    "LatenessSettings",
    "SessionSettings",
    "ProfileSettings",
    "SegmentSettings",
    "PrivacySettings",
    "ModelSettings",
    "ClusterSettings",
    "KafkaSettings",
    "RedisSettings",
    "RecoverySettings",
    "ReplaySettings",
    "RunSettings",
    "ConversionSettings",
    "load_settings",
]

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
ENV_PREFIX = "JOURNEYFLOW_"

log = logging.getLogger(__name__)

Check = Callable[[Any], str | None]


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _one_of(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _share(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def _setting(check: Check | None = None) -> Any:
    return field(metadata={"check": check})


@dataclass(frozen=True)
class InputSettings:
    max_event_bytes: int = _setting(_positive)
    """Larger messages are dead letters. Env: JOURNEYFLOW_INPUT_MAX_EVENT_BYTES."""


@dataclass(frozen=True)
class DedupSettings:
    window_s: int = _setting(_positive)
    """Event-time window for duplicate event ids. Env: JOURNEYFLOW_DEDUP_WINDOW_S."""
    max_ids_per_user: int = _setting(_positive)
    """Cap on remembered ids per user. Env: JOURNEYFLOW_DEDUP_MAX_IDS_PER_USER."""


@dataclass(frozen=True)
class LatenessSettings:
    allowed_s: int = _setting(_non_negative)
    """How far behind a user's latest event an event may be. Env: JOURNEYFLOW_LATENESS_ALLOWED_S."""


@dataclass(frozen=True)
class SessionSettings:
    gap_s: int = _setting(_positive)
    """Inactivity that ends a session. Env: JOURNEYFLOW_SESSIONS_GAP_S."""


@dataclass(frozen=True)
class ProfileSettings:
    engagement_half_life_s: int = _setting(_positive)
    affinity_half_life_s: int = _setting(_positive)
    product_window_s: int = _setting(_positive)
    max_products: int = _setting(_positive)
    max_categories: int = _setting(_positive)
    max_cart_items: int = _setting(_positive)
    max_purchases: int = _setting(_positive)
    max_sessions: int = _setting(_positive)


@dataclass(frozen=True)
class SegmentSettings:
    rules_file: str = _setting()
    """Segment and trigger rules. Env: JOURNEYFLOW_SEGMENTS_RULES_FILE."""
    refresh_s: int = _setting(_positive)
    """Re-evaluation interval for time-driven segments. Env: JOURNEYFLOW_SEGMENTS_REFRESH_S."""


@dataclass(frozen=True)
class PrivacySettings:
    personal_fields: list[str] = _setting()
    salt: str = _setting(lambda v: None if v else "must not be empty")
    """Key of the personal-data hash. Env: JOURNEYFLOW_PRIVACY_SALT."""


@dataclass(frozen=True)
class ModelSettings:
    propensity_horizon_s: int = _setting(_positive)
    churn_horizon_s: int = _setting(_positive)
    example_interval_s: int = _setting(_positive)
    rescore_s: int = _setting(_positive)
    propensity_learning_rate: float = _setting(_positive)
    churn_learning_rate: float = _setting(_positive)
    min_examples: int = _setting(_non_negative)
    """No score until a model has learned from this many examples. Env: JOURNEYFLOW_MODELS_MIN_EXAMPLES."""
    seed: int = _setting()
    warm_start: str = _setting()
    """Model state exported by a replay (models.bin) to start from; empty for none.
    Env: JOURNEYFLOW_MODELS_WARM_START."""


@dataclass(frozen=True)
class ClusterSettings:
    k: int = _setting(_positive)
    halflife: float = _setting(_share)


@dataclass(frozen=True)
class KafkaSettings:
    brokers: str = _setting(lambda v: None if v.strip() else "must name at least one host:port")
    """Comma-separated host:port list. Env: JOURNEYFLOW_KAFKA_BROKERS."""
    events_topic: str = _setting()
    segment_changes_topic: str = _setting()
    triggers_topic: str = _setting()
    dead_letters_topic: str = _setting()
    sessions_topic: str = _setting()
    holdouts_topic: str = _setting()
    conversions_topic: str = _setting()
    connect_timeout_s: float = _setting(_positive)
    start_from: str = _setting(_one_of("earliest", "latest"))


@dataclass(frozen=True)
class RedisSettings:
    url: str = _setting()
    """redis://host:port/db; empty for no Redis. Env: JOURNEYFLOW_REDIS_URL."""
    key_prefix: str = _setting()
    profile_ttl_s: int = _setting(_non_negative)
    connect_timeout_s: float = _setting(_positive)


@dataclass(frozen=True)
class RecoverySettings:
    dir: str = _setting()
    """Recovery directory; empty for none. Env: JOURNEYFLOW_RECOVERY_DIR."""
    partitions: int = _setting(_positive)
    snapshot_s: float = _setting(_positive)
    backup_s: float = _setting(_non_negative)


@dataclass(frozen=True)
class ReplaySettings:
    tick_s: int = _setting(_positive)
    """Event time between a replay's ticks (its stand-in for timers). Env: JOURNEYFLOW_REPLAY_TICK_S."""
    tick_window_s: int = _setting(_positive)
    """Users seen within this long get ticks. Env: JOURNEYFLOW_REPLAY_TICK_WINDOW_S."""


@dataclass(frozen=True)
class RunSettings:
    workers: int = _setting(_positive)
    epoch_s: float = _setting(_positive)
    metrics_port: int = _setting(lambda v: None if 0 <= v < 65536 else "must be a port number")


@dataclass(frozen=True)
class ConversionSettings:
    """The closed loop (``operators/loop.py``): following triggers to their conversions."""

    reorder_s: int = _setting(_non_negative)
    """Goal events are kept this long in event time, and a trigger is judged this long
    after its window: triggers that come through the models arrive behind the events
    that followed them. Default 86400; ``JOURNEYFLOW_CONVERSIONS_REORDER_S``."""
    max_goal_events_per_user: int = _setting(_positive)
    """At most this many recent goal events kept per user (default 4;
    ``JOURNEYFLOW_CONVERSIONS_MAX_GOAL_EVENTS_PER_USER``)."""
    seed: int = _setting()
    """Seed of the variant bandits (default 42; ``JOURNEYFLOW_CONVERSIONS_SEED``)."""


@dataclass(frozen=True)
class Settings:
    """Every setting of journeyflow, one frozen section per concern."""

    input: InputSettings
    dedup: DedupSettings
    lateness: LatenessSettings
    sessions: SessionSettings
    profiles: ProfileSettings
    segments: SegmentSettings
    privacy: PrivacySettings
    models: ModelSettings
    clusters: ClusterSettings
    kafka: KafkaSettings
    redis: RedisSettings
    recovery: RecoverySettings
    replay: ReplaySettings
    run: RunSettings
    conversions: ConversionSettings
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
    merged = _read_toml(DEFAULT_CONFIG)
    config_dir = DEFAULT_CONFIG.parent
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            msg = f"config file {str(path)!r} does not exist"
            raise ConfigError(msg)
        _merge(merged, _read_toml(path), str(path))
        config_dir = path.resolve().parent
    _merge(merged, _from_env(env), "the environment")
    if overrides:
        _merge(merged, {k: dict(v) for k, v in overrides.items()}, "the command line")
    sections = {name: _build(name, cls, merged.get(name, {})) for name, cls in _SECTIONS.items()}
    settings = Settings(**sections, config_dir=config_dir)
    _cross_check(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as ex:
        msg = f"config file {str(path)!r} is not valid TOML: {ex}"
        raise ConfigError(msg) from ex


def _merge(base: dict[str, Any], extra: dict[str, Any], origin: str) -> None:
    for section, values in extra.items():
        if section not in _SECTIONS:
            msg = f"unknown section [{section}] in {origin}; known: {', '.join(_SECTIONS)}"
            raise ConfigError(msg)
        if not isinstance(values, dict):
            msg = f"[{section}] in {origin} must be a table; got {values!r} instead"
            raise ConfigError(msg)
        known = {f.name for f in fields(_SECTIONS[section])}
        for key in values:
            if key not in known:
                msg = (
                    f"unknown setting {section}.{key} in {origin}; "
                    f"known in [{section}]: {', '.join(sorted(known))}"
                )
                raise ConfigError(msg)
        base.setdefault(section, {}).update(values)


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Collect ``JOURNEYFLOW_<SECTION>_<KEY>`` variables, converted to the key's type."""
    found: dict[str, dict[str, Any]] = {}
    names = {}
    for section, cls in _SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            names[f"{ENV_PREFIX}{section}_{f.name}".upper()] = (section, f.name, hints[f.name])
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "CONFIG":
            continue
        if var not in names:
            log.warning("ignoring unknown environment variable %s", var)
            continue
        section, key, kind = names[var]
        found.setdefault(section, {})[key] = _convert(var, text, kind)
    return found


def _convert(var: str, text: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return lowered in ("1", "true", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind == list[str]:
            return [part.strip() for part in text.split(",") if part.strip()]
        return text
    except ValueError:
        msg = f"{var} must be {_type_name(kind)}; got {text!r} instead"
        raise ConfigError(msg) from None


def _type_name(kind: Any) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
    }.get(kind, "a list of strings")


def _build(section: str, cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        key = f"{section}.{f.name}"
        if f.name not in values:
            msg = f"missing setting {key}"
            raise ConfigError(msg)
        value = values[f.name]
        kind = hints[f.name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not _is_instance(value, kind):
            msg = f"{key} must be {_type_name(kind)}; got {value!r} instead"
            raise ConfigError(msg)
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            msg = f"{key} {problem}; got {value!r} instead"
            raise ConfigError(msg)
        kwargs[f.name] = value
    return cls(**kwargs)


def _is_instance(value: Any, kind: Any) -> bool:
    if kind == list[str]:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _cross_check(settings: Settings) -> None:
    if settings.dedup.window_s < settings.lateness.allowed_s:
        msg = (
            f"dedup.window_s must be >= lateness.allowed_s ({settings.lateness.allowed_s}), "
            f"or a late duplicate could pass as new; got {settings.dedup.window_s} instead"
        )
        raise ConfigError(msg)
    for name in settings.privacy.personal_fields:
        if not name or any(not part for part in name.split(".")):
            msg = f"privacy.personal_fields must hold dotted paths like traits.email; got {name!r}"
            raise ConfigError(msg)
