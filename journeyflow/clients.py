"""Options of every Kafka and Redis client, built from the settings in one place.

The worker's source, sinks and admin checks, ``replay --redis`` and the
scripts (``produce_events.py``, ``tail_triggers.py``, ``bench_live.py``) all
get their client options here, so TLS, SASL and the ACL user work the same
everywhere. Building the options checks what can be checked without the
network (files readable, a PEM that loads, a mechanism kafka-python knows, a
codec whose package is installed) and raises :class:`ConfigError` with one
line. What goes wrong at connect time is told by :mod:`journeyflow.connection_failures`.

Secrets (SASL and Redis passwords) are handed to the clients as :class:`Secret`,
a ``str`` whose ``repr``, ``str`` and ``format`` are ``***``: kafka-python logs
its whole configuration at debug level, and a secret must not appear in any log,
message or traceback. The clients themselves read the real characters.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from config.checks import read_secret_file
from config.connections import KafkaSettings, RedisSettings
from config.fields import MASK, mask_url
from journeyflow.errors import ConfigError

__all__ = [
    "Secret",
    "kafka_options",
    "producer_options",
    "redis_options",
    "tls_context",
]


class Secret(str):
    """A password that prints as ``***`` (``repr``, ``str``, f-strings, ``%s``).

    >>> password = Secret("s3cret")
    >>> f"{password} {password!r}", "%s" % {"p": password}
    ('*** ***', "{'p': ***}")
    >>> password.encode() == b"s3cret" and ":".join(["u", password]) == "u:s3cret"
    True
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return MASK

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK


def _readable(setting: str, path: str) -> str:
    try:
        with open(path, "rb"):
            return path
    except OSError as ex:
        msg = f"{setting} {path!r} cannot be read: {ex.strerror or type(ex).__name__}"
        raise ConfigError(msg) from None


def tls_context(
    section: str, ca_file: str, cert_file: str, key_file: str, check_hostname: bool
) -> ssl.SSLContext:
    """Return the TLS context the files describe; raise ``ConfigError`` if a file does not load."""
    ctx = ssl.create_default_context(cafile=None)
    ctx.check_hostname = check_hostname
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=_readable(f"{section}.ssl_ca_file", ca_file))
        except ssl.SSLError as ex:
            msg = f"{section}.ssl_ca_file {ca_file!r} must hold PEM certificates; got an unreadable file ({ex.reason})"
            raise ConfigError(msg) from None
    if cert_file:
        _readable(f"{section}.ssl_cert_file", cert_file)
        _readable(f"{section}.ssl_key_file", key_file)
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as ex:
            msg = (
                f"{section}.ssl_cert_file and ssl_key_file must be a PEM certificate and its key; "
                f"they do not load ({ex.reason})"
            )
            raise ConfigError(msg) from None
    return ctx


def _password(setting: str, value: str, file_setting: str, path: str) -> Secret | None:
    if path:
        return Secret(read_secret_file(file_setting, path))
    return Secret(value) if value else None


# --- Kafka ---------------------------------------------------------------------------------


def kafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Return the security options of any kafka-python client (consumer, producer, admin).

    >>> from config.settings import load_settings
    >>> kafka_options(load_settings(env={}).kafka)
    {'security_protocol': 'PLAINTEXT'}
    """
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol.endswith("SSL"):
        # Loaded once here so that a bad file is one line now, not a retry loop later.
        tls_context("kafka", kafka.ssl_ca_file, kafka.ssl_cert_file, kafka.ssl_key_file, kafka.ssl_check_hostname)
        options["ssl_check_hostname"] = kafka.ssl_check_hostname
        if kafka.ssl_ca_file:
            options["ssl_cafile"] = kafka.ssl_ca_file
        if kafka.ssl_cert_file:
            options["ssl_certfile"] = kafka.ssl_cert_file
            options["ssl_keyfile"] = kafka.ssl_key_file
    if kafka.security_protocol.startswith("SASL_"):
        from kafka.net.sasl import SASL_MECHANISMS

        if kafka.sasl_mechanism not in SASL_MECHANISMS:
            known = ", ".join(sorted(SASL_MECHANISMS))
            msg = f"kafka.sasl_mechanism must be one kafka-python supports ({known}); got {kafka.sasl_mechanism!r}"
            raise ConfigError(msg)
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = _password(
            "kafka.sasl_password", kafka.sasl_password, "kafka.sasl_password_file", kafka.sasl_password_file
        )
    return options


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Return the producer options of the settings: ``acks`` and ``compression_type``.

    >>> from config.settings import load_settings
    >>> producer_options(load_settings(env={}).kafka)
    {'acks': 'all', 'compression_type': None}
    """
    from kafka import codec

    available = {"gzip": codec.has_gzip, "snappy": codec.has_snappy, "lz4": codec.has_lz4, "zstd": codec.has_zstd}
    if kafka.compression != "none" and not available[kafka.compression]():
        usable = ", ".join(["none", *(name for name, has in available.items() if has())])
        msg = (
            f"kafka.compression {kafka.compression!r} needs its Python package, which is not installed; "
            f"usable here: {usable}"
        )
        raise ConfigError(msg)
    acks: str | int = "all" if kafka.acks == "all" else int(kafka.acks)
    return {"acks": acks, "compression_type": None if kafka.compression == "none" else kafka.compression}


# --- Redis ---------------------------------------------------------------------------------


def redis_options(redis: RedisSettings, url: str | None = None) -> dict[str, Any]:
    """Return the options of ``redis.Redis.from_url(url, **options)`` for ``url``
    (default ``redis.url``): the ACL user and the TLS files.

    >>> from config.settings import load_settings
    >>> redis_options(load_settings(env={}).redis, "redis://127.0.0.1:6379/0")
    {}
    """
    url = redis.url if url is None else url
    parts = urlsplit(url)
    password = _password("redis.password", redis.password, "redis.password_file", redis.password_file)
    if parts.password is not None and password is not None:
        msg = "the redis password is both in redis.url and in redis.password(_file); keep one"
        raise ConfigError(msg)
    if parts.username and redis.username and parts.username != redis.username:
        msg = f"redis.url names user {parts.username!r} and redis.username {redis.username!r}; keep one"
        raise ConfigError(msg)
    options: dict[str, Any] = {}
    if redis.username:
        options["username"] = redis.username
    if password is not None:
        options["password"] = password
    if parts.scheme == "rediss":
        tls_context("redis", redis.ssl_ca_file, redis.ssl_cert_file, redis.ssl_key_file, True)
        if redis.ssl_ca_file:
            options["ssl_ca_certs"] = redis.ssl_ca_file
        if redis.ssl_cert_file:
            options["ssl_certfile"] = redis.ssl_cert_file
            options["ssl_keyfile"] = redis.ssl_key_file
    elif any((redis.ssl_ca_file, redis.ssl_cert_file)):
        msg = f"redis.ssl_ca_file and ssl_cert_file need a rediss:// url; got {mask_url(url)!r}"
        raise ConfigError(msg)
    return options
