"""Load journeyflow's settings once, validated and frozen.

Sources, later ones winning: ``config/default.toml`` (which holds every
default), the file given with ``--config`` (or ``JOURNEYFLOW_CONFIG``), then
environment variables named ``JOURNEYFLOW_<SECTION>_<KEY>``. Unknown keys and
values of the wrong type or out of range stop start-up with a message naming
the key, the value and what is allowed. Operators receive only their section.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
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
    "IdentitySettings",
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
    "LoggingSettings",
    "NON_SETTING_VARIABLES",
    "OutageSettings",
    "RecommendationSettings",
    "load_settings",
    "masked",
    "mask_url",
    "check_salt",
    "shipped_salt",
]

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
ENV_PREFIX = "JOURNEYFLOW_"

NON_SETTING_VARIABLES: dict[str, str] = {
    "JOURNEYFLOW_CONFIG": "the settings file, like --config",
    "JOURNEYFLOW_PURE": "1 runs the per-user modules from source, not mypyc's build (journeyflow/compiled.py)",
}
"""The only ``JOURNEYFLOW_*`` environment variables that are not settings; any other
that names no setting stops start-up, as an unknown key in a file does. Add here
(with what it is for) any variable the project reads that is not a setting."""

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


def _setting(check: Check | None = None, *, secret: bool = False) -> Any:
    return field(metadata={"check": check, "secret": secret})


# --- secrets: masked wherever settings are printed (issue 15) -------------------------

MASK = "***"


def mask_url(url: str) -> str:
    """Return ``url`` with the password of its user part masked.

    >>> mask_url("rediss://jf:s3cret@cache:6380/0")
    'rediss://jf:***@cache:6380/0'
    >>> mask_url("redis://cache:6379/0")
    'redis://cache:6379/0'
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{host}"


def _shown(section: Any, name: str) -> Any:
    value = getattr(section, name)
    meta = next(f.metadata for f in fields(section) if f.name == name)
    if meta.get("secret") and value:
        return MASK
    if name == "url" and isinstance(value, str):
        return mask_url(value)
    return value


def _masked_repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={_shown(self, f.name)!r}" for f in fields(self))
    return f"{type(self).__name__}({shown})"


@dataclass(frozen=True)
class InputSettings:
    max_event_bytes: int = _setting(_positive)
    """Larger messages are dead letters. Env: JOURNEYFLOW_INPUT_MAX_EVENT_BYTES."""
    max_dead_letter_bytes: int = _setting(lambda v: None if v >= 1024 else "must be >= 1024")
    """Bound of a dead letter's JSON record (a longer message keeps a prefix, its
    length and its digest). Env: JOURNEYFLOW_INPUT_MAX_DEAD_LETTER_BYTES."""


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
class IdentitySettings:
    link_idle_s: int = _setting(_positive)
    """Event time without an event of a linked device after which its link is
    forgotten (and its later events start a new anonymous profile).
    Env: JOURNEYFLOW_IDENTITY_LINK_IDLE_S."""


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
class RecommendationSettings:
    """The online recommender (``operators/recommend.py``)."""

    enabled: bool = _setting()
    """Learn and publish recommendations. Env: JOURNEYFLOW_RECOMMENDATIONS_ENABLED."""
    size: int = _setting(lambda v: None if 1 <= v <= 20 else "must be between 1 and 20")
    """Products per list. Env: JOURNEYFLOW_RECOMMENDATIONS_SIZE."""
    exclude_cart: bool = _setting()
    """Leave out what is in the cart. Env: JOURNEYFLOW_RECOMMENDATIONS_EXCLUDE_CART."""
    window: int = _setting(lambda v: None if 1 <= v <= 10 else "must be between 1 and 10")
    decay: float = _setting(lambda v: None if 0 <= v < 1 else "must be >= 0 and < 1")
    neighbours: int = _setting(_positive)
    max_products: int = _setting(_positive)
    max_categories: int = _setting(_positive)
    shards: int = _setting(_positive)
    popularity_half_life_s: int = _setting(_positive)


@dataclass(frozen=True)
class SegmentSettings:
    rules_file: str = _setting()
    """Segment and trigger rules. Env: JOURNEYFLOW_SEGMENTS_RULES_FILE."""
    refresh_s: int = _setting(_positive)
    """Re-evaluation interval for time-driven segments. Env: JOURNEYFLOW_SEGMENTS_REFRESH_S."""


@dataclass(frozen=True, repr=False)
class PrivacySettings:
    personal_fields: list[str] = _setting()
    salt: str = _setting(lambda v: None if v else "must not be empty", secret=True)
    """Key of the personal-data hash (the content of ``salt_file`` when that is set).
    Env: JOURNEYFLOW_PRIVACY_SALT."""
    salt_file: str = _setting()
    """File holding the salt (trailing newline ignored); empty for none. Env: JOURNEYFLOW_PRIVACY_SALT_FILE."""
    allow_default_salt: bool = _setting()
    """Let ``journeyflow run`` start with the shipped salt (demos only).
    Env: JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT."""

    __repr__ = _masked_repr


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
    learning_rate: float = _setting(_share)
    """Share of the way the nearest centre moves towards each point (River's ``halflife``;
    the old key ``halflife`` is a deprecated alias). Env: JOURNEYFLOW_CLUSTERS_LEARNING_RATE."""


@dataclass(frozen=True, repr=False)
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
    # Client identity, producer and security settings (issues 15, 16); journeyflow/clients.py
    # turns them into the options of every kafka-python client.
    client_id: str = _setting(lambda v: None if v.strip() else "must not be empty")
    """Client id shown in broker logs and quotas (scripts append their name). Env: JOURNEYFLOW_KAFKA_CLIENT_ID."""
    acks: str = _setting(_one_of("all", "1", "0"))
    """Acknowledgements a produced record waits for. Env: JOURNEYFLOW_KAFKA_ACKS."""
    compression: str = _setting(_one_of("none", "gzip", "snappy", "lz4", "zstd"))
    """Producer compression codec. Env: JOURNEYFLOW_KAFKA_COMPRESSION."""
    security_protocol: str = _setting(_one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    """Env: JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL."""
    sasl_mechanism: str = _setting(_one_of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    """Env: JOURNEYFLOW_KAFKA_SASL_MECHANISM."""
    sasl_username: str = _setting()
    """Env: JOURNEYFLOW_KAFKA_SASL_USERNAME."""
    sasl_password: str = _setting(secret=True)
    """Env: JOURNEYFLOW_KAFKA_SASL_PASSWORD (prefer ``sasl_password_file``)."""
    sasl_password_file: str = _setting()
    """File holding the SASL password. Env: JOURNEYFLOW_KAFKA_SASL_PASSWORD_FILE."""
    ssl_ca_file: str = _setting()
    """PEM CA bundle the brokers' certificates must chain to; empty: the system's. Env: JOURNEYFLOW_KAFKA_SSL_CA_FILE."""
    ssl_cert_file: str = _setting()
    """PEM client certificate (mutual TLS). Env: JOURNEYFLOW_KAFKA_SSL_CERT_FILE."""
    ssl_key_file: str = _setting()
    """PEM key of ``ssl_cert_file``. Env: JOURNEYFLOW_KAFKA_SSL_KEY_FILE."""
    ssl_check_hostname: bool = _setting()
    """Whether a broker's certificate must name the host dialled. Env: JOURNEYFLOW_KAFKA_SSL_CHECK_HOSTNAME."""

    __repr__ = _masked_repr
    max_request_size: int = _setting(lambda v: None if v >= 4096 else "must be >= 4096")
    """Producers' largest request in bytes. Env: JOURNEYFLOW_KAFKA_MAX_REQUEST_SIZE."""
    partitions: int = _setting(_positive)
    """Partitions of the topics ``journeyflow topics create`` makes. Env: JOURNEYFLOW_KAFKA_PARTITIONS."""


@dataclass(frozen=True, repr=False)
class RedisSettings:
    url: str = _setting()
    """redis://host:port/db (rediss:// for TLS); empty for no Redis. Env: JOURNEYFLOW_REDIS_URL."""
    key_prefix: str = _setting()
    profile_ttl_s: int = _setting(_non_negative)
    connect_timeout_s: float = _setting(_positive)
    # ACL user and TLS (issue 15); journeyflow/clients.py turns them into redis-py options.
    username: str = _setting()
    """ACL user (or in the url). Env: JOURNEYFLOW_REDIS_USERNAME."""
    password: str = _setting(secret=True)
    """Env: JOURNEYFLOW_REDIS_PASSWORD (prefer ``password_file``)."""
    password_file: str = _setting()
    """File holding the password. Env: JOURNEYFLOW_REDIS_PASSWORD_FILE."""
    ssl_ca_file: str = _setting()
    """PEM CA bundle for a rediss:// url; empty: the system's. Env: JOURNEYFLOW_REDIS_SSL_CA_FILE."""
    ssl_cert_file: str = _setting()
    """PEM client certificate (mutual TLS). Env: JOURNEYFLOW_REDIS_SSL_CERT_FILE."""
    ssl_key_file: str = _setting()
    """PEM key of ``ssl_cert_file``. Env: JOURNEYFLOW_REDIS_SSL_KEY_FILE."""

    __repr__ = _masked_repr
    repair_check_s: float = _setting(_non_negative)
    """How often each profile is checked for a Redis data loss and rewritten from state
    (live worker); 0: no repair. Env: JOURNEYFLOW_REDIS_REPAIR_CHECK_S."""


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
class StateSettings:
    idle_release_s: int = _setting(_non_negative)
    """A user idle this long (event time; the user's clock live) publishes a final row and
    is forgotten; 0: never. Env: JOURNEYFLOW_STATE_IDLE_RELEASE_S."""


@dataclass(frozen=True)
class RunSettings:
    workers: int = _setting(_positive)
    epoch_s: float = _setting(_positive)
    metrics_port: int = _setting(lambda v: None if 0 <= v < 65536 else "must be a port number")
    metrics_address: str = _setting(lambda v: None if v.strip() else "must be an address to bind")
    """Address the metrics server binds to. Env: JOURNEYFLOW_RUN_METRICS_ADDRESS."""


@dataclass(frozen=True)
class OutageSettings:
    """How the live worker waits out a lost Redis or Kafka broker."""

    backoff_s: float = _setting(_positive)
    """First wait before retrying. Env: JOURNEYFLOW_OUTAGES_BACKOFF_S."""
    max_backoff_s: float = _setting(_positive)
    """Longest wait between retries. Env: JOURNEYFLOW_OUTAGES_MAX_BACKOFF_S."""
    give_up_after_s: float = _setting(_non_negative)
    """Exit (code 2) once an outage lasted this long; 0: never. Env: JOURNEYFLOW_OUTAGES_GIVE_UP_AFTER_S."""


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
class LoggingSettings:
    level: str = _setting(_one_of("debug", "info", "warning", "error"))
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
    settings = _resolve_files(settings)
    _check_security(settings)
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
        values = _apply_aliases(section, values, origin)
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
    for (section, old), new in _ALIASES.items():
        kind = names[f"{ENV_PREFIX}{section}_{new}".upper()][2]
        names[f"{ENV_PREFIX}{section}_{old}".upper()] = (section, old, kind)
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var in NON_SETTING_VARIABLES:
            continue
        if var not in names:
            close = difflib.get_close_matches(var, list(names), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            msg = (
                f"unknown environment variable {var}: it is no setting{hint} "
                f"(settings are JOURNEYFLOW_<SECTION>_<KEY>; other variables: {', '.join(NON_SETTING_VARIABLES)})"
            )
            raise ConfigError(msg)
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
    if settings.outages.max_backoff_s < settings.outages.backoff_s:
        msg = (
            f"outages.max_backoff_s must be >= outages.backoff_s ({settings.outages.backoff_s}); "
            f"got {settings.outages.max_backoff_s} instead"
        )
        raise ConfigError(msg)
    if settings.dedup.window_s < settings.lateness.allowed_s:
        msg = (
            f"dedup.window_s must be >= lateness.allowed_s ({settings.lateness.allowed_s}), "
            f"or a late duplicate could pass as new; got {settings.dedup.window_s} instead"
        )
        raise ConfigError(msg)
    release = settings.state.idle_release_s
    # Released only once the dedup window and any open session are over, so a
    # release never cuts a session short or lets a duplicate through.
    least = max(settings.dedup.window_s, settings.sessions.gap_s + settings.lateness.allowed_s + 1)
    if release and release < least:
        msg = (
            f"state.idle_release_s must be 0 or >= {least} (dedup.window_s, and sessions.gap_s + "
            f"lateness.allowed_s); got {release} instead"
        )
        raise ConfigError(msg)
    for name in settings.privacy.personal_fields:
        if not name or any(not part for part in name.split(".")):
            msg = f"privacy.personal_fields must hold dotted paths like traits.email; got {name!r}"
            raise ConfigError(msg)


# --- deprecated names, secret files, security checks (issues 15, 16) ---------------------

_ALIASES: dict[tuple[str, str], str] = {
    ("clusters", "halflife"): "learning_rate",
}
"""Old key -> its new name, per section. An old key still works, with a warning."""


def _apply_aliases(section: str, values: dict[str, Any], origin: str) -> dict[str, Any]:
    renamed = dict(values)
    for (where, old), new in _ALIASES.items():
        if where != section or old not in renamed:
            continue
        if new in renamed:
            msg = f"{section}.{old} (deprecated) and {section}.{new} are both set in {origin}; keep {section}.{new}"
            raise ConfigError(msg)
        log.warning(
            "setting %s.%s in %s is deprecated; call it %s.%s (same value)", section, old, origin, section, new
        )
        renamed[new] = renamed.pop(old)
    return renamed


def shipped_salt() -> str:
    """Return the salt ``config/default.toml`` ships with (public: never for live data)."""
    return str(_read_toml(DEFAULT_CONFIG)["privacy"]["salt"])


def check_salt(privacy: PrivacySettings, *, live: bool) -> None:
    """Refuse (``live``) or warn about (a replay) the shipped salt, which anyone can read.

    Hashes made with a public salt can be reversed by hashing known e-mail
    addresses, so the live worker starts with it only when
    ``[privacy] allow_default_salt`` is true (a demo), and then with a warning.
    """
    if privacy.salt != shipped_salt():
        return
    if live and not privacy.allow_default_salt:
        msg = (
            "privacy.salt is the shipped default, which anyone can read: set JOURNEYFLOW_PRIVACY_SALT "
            "(or [privacy] salt_file, a file holding it) to a long random secret, "
            "or [privacy] allow_default_salt = true for a demo"
        )
        raise ConfigError(msg)
    log.warning(
        "personal data is hashed with the shipped salt, which anyone can read; "
        "set JOURNEYFLOW_PRIVACY_SALT or [privacy] salt_file for real data"
    )


def read_secret_file(setting: str, path: str) -> str:
    """Return the content of the secret file of ``setting``, without the trailing newline.

    Raises ``ConfigError`` (naming the setting and the path, never the content)
    when the file cannot be read or is empty.
    """
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as ex:
        reason = ex.strerror if isinstance(ex, OSError) and ex.strerror else type(ex).__name__
        msg = f"{setting} {path!r} cannot be read: {reason}"
        raise ConfigError(msg) from None
    if not text:
        msg = f"{setting} {path!r} must hold the secret; got an empty file instead"
        raise ConfigError(msg)
    return text


_FILE_SETTINGS = {
    "privacy": ("salt_file",),
    "kafka": ("sasl_password_file", "ssl_ca_file", "ssl_cert_file", "ssl_key_file"),
    "redis": ("password_file", "ssl_ca_file", "ssl_cert_file", "ssl_key_file"),
}


def _resolve_files(settings: Settings) -> Settings:
    """Resolve file settings like ``rules_file``; put the salt file's content in ``privacy.salt``."""
    changes: dict[str, Any] = {}
    for section, names in _FILE_SETTINGS.items():
        current = getattr(settings, section)
        resolved = {n: str(settings.resolve(getattr(current, n))) for n in names if getattr(current, n)}
        if resolved:
            changes[section] = replace(current, **resolved)
    privacy = changes.get("privacy", settings.privacy)
    if privacy.salt_file:
        if privacy.salt != shipped_salt():
            msg = "privacy.salt and privacy.salt_file are both set; keep one"
            raise ConfigError(msg)
        changes["privacy"] = replace(privacy, salt=read_secret_file("privacy.salt_file", privacy.salt_file))
    return replace(settings, **changes) if changes else settings


def _check_security(settings: Settings) -> None:
    """Refuse security settings that cannot work or would be ignored (no setting that does nothing)."""
    kafka, redis = settings.kafka, settings.redis
    sasl = kafka.security_protocol.startswith("SASL_")
    tls = kafka.security_protocol.endswith("SSL")
    if sasl and not kafka.sasl_username:
        msg = f"kafka.sasl_username must be set with security_protocol {kafka.security_protocol}; got nothing"
        raise ConfigError(msg)
    if sasl and not (kafka.sasl_password or kafka.sasl_password_file):
        msg = (
            f"kafka.sasl_password or kafka.sasl_password_file must be set with security_protocol "
            f"{kafka.security_protocol}; got neither"
        )
        raise ConfigError(msg)
    if kafka.sasl_password and kafka.sasl_password_file:
        msg = "kafka.sasl_password and kafka.sasl_password_file are both set; keep one"
        raise ConfigError(msg)
    unused = [n for n in ("sasl_username", "sasl_password", "sasl_password_file") if not sasl and getattr(kafka, n)]
    unused += [n for n in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file") if not tls and getattr(kafka, n)]
    if unused:
        msg = (
            f"kafka.{unused[0]} is set but kafka.security_protocol is {kafka.security_protocol}, which ignores it; "
            "set security_protocol to one that uses it (SSL, SASL_PLAINTEXT, SASL_SSL) or remove it"
        )
        raise ConfigError(msg)
    if bool(kafka.ssl_cert_file) != bool(kafka.ssl_key_file):
        msg = "kafka.ssl_cert_file and kafka.ssl_key_file go together; got only one"
        raise ConfigError(msg)
    if redis.password and redis.password_file:
        msg = "redis.password and redis.password_file are both set; keep one"
        raise ConfigError(msg)
    if redis.url and not redis.url.startswith(("redis://", "rediss://", "unix://")):
        msg = f"redis.url must start with redis:// or rediss:// (TLS); got {mask_url(redis.url)!r} instead"
        raise ConfigError(msg)
    redis_tls = redis.url.startswith("rediss://")
    unused = [n for n in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file") if not redis_tls and getattr(redis, n)]
    if unused and redis.url:
        msg = f"redis.{unused[0]} is set but redis.url is not rediss://, so TLS is off; use a rediss:// url"
        raise ConfigError(msg)
    if bool(redis.ssl_cert_file) != bool(redis.ssl_key_file):
        msg = "redis.ssl_cert_file and redis.ssl_key_file go together; got only one"
        raise ConfigError(msg)


def masked(settings: Settings) -> dict[str, dict[str, Any]]:
    """Return every setting by section, secrets replaced by ``***`` (for printing).

    >>> masked(load_settings(env={"JOURNEYFLOW_PRIVACY_SALT": "pepper"}))["privacy"]["salt"]
    '***'
    """
    return {
        name: {f.name: _shown(getattr(settings, name), f.name) for f in fields(getattr(settings, name))}
        for name in _SECTIONS
    }
