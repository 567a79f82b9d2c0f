"""Checks and file resolution run once when settings load: settings that must agree across
sections, security settings that cannot work or would be ignored, the shipped salt, and
secret files (issues 15, 16).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.fields import mask_url
from config.loading import DEFAULT_CONFIG, read_toml
from journeyflow.errors import ConfigError

if TYPE_CHECKING:
    from config.settings import PrivacySettings, Settings

__all__ = ["check_salt", "check_security", "cross_check", "read_secret_file", "resolve_files", "shipped_salt"]

log = logging.getLogger("config.settings")


def cross_check(settings: Settings) -> None:
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


def shipped_salt() -> str:
    """Return the salt ``config/default.toml`` ships with (public: never for live data)."""
    return str(read_toml(DEFAULT_CONFIG)["privacy"]["salt"])


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


FILE_SETTINGS = {
    "privacy": ("salt_file",),
    "kafka": ("sasl_password_file", "ssl_ca_file", "ssl_cert_file", "ssl_key_file"),
    "redis": ("password_file", "ssl_ca_file", "ssl_cert_file", "ssl_key_file"),
}


def resolve_files(settings: Settings) -> Settings:
    """Resolve file settings like ``rules_file``; put the salt file's content in ``privacy.salt``."""
    changes: dict[str, Any] = {}
    for section, names in FILE_SETTINGS.items():
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


def check_security(settings: Settings) -> None:
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
