"""Load journeyflow's settings once, validated and frozen.

Sources, later ones winning: ``config/default.toml`` (which holds every
default), the file given with ``--config`` (or ``JOURNEYFLOW_CONFIG``), then
environment variables named ``JOURNEYFLOW_<SECTION>_<KEY>``. Unknown keys and
values of the wrong type or out of range stop start-up with a message naming
the key, the value and what is allowed. Operators receive only their section.

The sections of the worker's runtime (recovery, replay, state, run, logging) are declared
here, those of the pipeline's steps in :mod:`config.pipeline`, those of the services the
worker connects to in :mod:`config.connections`; :mod:`config.fields` declares a field (its check, whether it is
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

from config.checks import FILE_SETTINGS, check_security, cross_check, resolve_files
from config.connections import KafkaSettings, OutageSettings, RedisSettings
from config.fields import non_negative, one_of, positive, setting, shown_value
from config.loading import DEFAULT_CONFIG, ENV_PREFIX, build, from_env, merge, read_toml
from config.pipeline import (
    ClusterSettings,
    ConversionSettings,
    DedupSettings,
    IdentitySettings,
    InputSettings,
    LatenessSettings,
    ModelSettings,
    PrivacySettings,
    ProfileSettings,
    RecommendationSettings,
    SegmentSettings,
    SessionSettings,
)
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
        if path.is_dir():
            msg = f"config file {str(path)!r} must be a TOML file; got a folder instead"
            raise ConfigError(msg)
        if not path.is_file():
            msg = f"config file {str(path)!r} does not exist"
            raise ConfigError(msg)
        extra = read_toml(path)
        _anchor_default_files(merged, extra)
        merge(merged, extra, str(path), _SECTIONS)
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


def _anchor_default_files(defaults: dict[str, Any], extra: dict[str, Any]) -> None:
    """Make the shipped file settings that ``extra`` does not set read from the shipped folder.

    A relative file setting is read from the working directory, else from the
    folder of the config file that set it; the others are resolved against the
    last file read, so without this a ``--config`` file that changes only
    ``[sessions] gap_s`` would look for the shipped ``rules.toml`` beside itself.
    """
    for section, names in {**FILE_SETTINGS, "segments": ("rules_file",)}.items():
        values = defaults.get(section, {})
        given = extra.get(section, {}) if isinstance(extra.get(section), dict) else {}
        for name in names:
            value = values.get(name)
            if value and name not in given and not Path(value).is_absolute() and not Path(value).exists():
                values[name] = str(DEFAULT_CONFIG.parent / value)


def masked(settings: Settings) -> dict[str, dict[str, Any]]:
    """Return every setting by section, secrets replaced by ``***`` (for printing).

    >>> masked(load_settings(env={"JOURNEYFLOW_PRIVACY_SALT": "pepper"}))["privacy"]["salt"]
    '***'
    """
    return {
        name: {f.name: shown_value(getattr(settings, name), f.name) for f in fields(getattr(settings, name))}
        for name in _SECTIONS
    }
