"""The settings sections of the services the live worker connects to: ``[kafka]``,
``[redis]`` and ``[outages]`` (how it waits out a lost one).

Part of :class:`config.settings.Settings`; see :mod:`config.settings` for how they load.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.fields import masked_repr, non_negative, one_of, positive, setting

__all__ = ["KafkaSettings", "OutageSettings", "RedisSettings"]


@dataclass(frozen=True, repr=False)
class KafkaSettings:
    brokers: str = setting(lambda v: None if v.strip() else "must name at least one host:port")
    """Comma-separated host:port list. Env: JOURNEYFLOW_KAFKA_BROKERS."""
    events_topic: str = setting()
    segment_changes_topic: str = setting()
    triggers_topic: str = setting()
    dead_letters_topic: str = setting()
    sessions_topic: str = setting()
    holdouts_topic: str = setting()
    conversions_topic: str = setting()
    connect_timeout_s: float = setting(positive)
    start_from: str = setting(one_of("earliest", "latest"))
    # Client identity, producer and security settings (issues 15, 16); journeyflow/clients.py
    # turns them into the options of every kafka-python client.
    client_id: str = setting(lambda v: None if v.strip() else "must not be empty")
    """Client id shown in broker logs and quotas (scripts append their name). Env: JOURNEYFLOW_KAFKA_CLIENT_ID."""
    acks: str = setting(one_of("all", "1", "0"))
    """Acknowledgements a produced record waits for. Env: JOURNEYFLOW_KAFKA_ACKS."""
    compression: str = setting(one_of("none", "gzip", "snappy", "lz4", "zstd"))
    """Producer compression codec. Env: JOURNEYFLOW_KAFKA_COMPRESSION."""
    security_protocol: str = setting(one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    """Env: JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL."""
    sasl_mechanism: str = setting(one_of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    """Env: JOURNEYFLOW_KAFKA_SASL_MECHANISM."""
    sasl_username: str = setting()
    """Env: JOURNEYFLOW_KAFKA_SASL_USERNAME."""
    sasl_password: str = setting(secret=True)
    """Env: JOURNEYFLOW_KAFKA_SASL_PASSWORD (prefer ``sasl_password_file``)."""
    sasl_password_file: str = setting()
    """File holding the SASL password. Env: JOURNEYFLOW_KAFKA_SASL_PASSWORD_FILE."""
    ssl_ca_file: str = setting()
    """PEM CA bundle the brokers' certificates must chain to; empty: the system's. Env: JOURNEYFLOW_KAFKA_SSL_CA_FILE."""
    ssl_cert_file: str = setting()
    """PEM client certificate (mutual TLS). Env: JOURNEYFLOW_KAFKA_SSL_CERT_FILE."""
    ssl_key_file: str = setting()
    """PEM key of ``ssl_cert_file``. Env: JOURNEYFLOW_KAFKA_SSL_KEY_FILE."""
    ssl_check_hostname: bool = setting()
    """Whether a broker's certificate must name the host dialled. Env: JOURNEYFLOW_KAFKA_SSL_CHECK_HOSTNAME."""

    __repr__ = masked_repr
    max_request_size: int = setting(lambda v: None if v >= 4096 else "must be >= 4096")
    """Producers' largest request in bytes. Env: JOURNEYFLOW_KAFKA_MAX_REQUEST_SIZE."""
    partitions: int = setting(positive)
    """Partitions of the topics ``journeyflow topics create`` makes. Env: JOURNEYFLOW_KAFKA_PARTITIONS."""


@dataclass(frozen=True, repr=False)
class RedisSettings:
    url: str = setting()
    """redis://host:port/db (rediss:// for TLS); empty for no Redis. Env: JOURNEYFLOW_REDIS_URL."""
    key_prefix: str = setting()
    profile_ttl_s: int = setting(non_negative)
    connect_timeout_s: float = setting(positive)
    # ACL user and TLS (issue 15); journeyflow/clients.py turns them into redis-py options.
    username: str = setting()
    """ACL user (or in the url). Env: JOURNEYFLOW_REDIS_USERNAME."""
    password: str = setting(secret=True)
    """Env: JOURNEYFLOW_REDIS_PASSWORD (prefer ``password_file``)."""
    password_file: str = setting()
    """File holding the password. Env: JOURNEYFLOW_REDIS_PASSWORD_FILE."""
    ssl_ca_file: str = setting()
    """PEM CA bundle for a rediss:// url; empty: the system's. Env: JOURNEYFLOW_REDIS_SSL_CA_FILE."""
    ssl_cert_file: str = setting()
    """PEM client certificate (mutual TLS). Env: JOURNEYFLOW_REDIS_SSL_CERT_FILE."""
    ssl_key_file: str = setting()
    """PEM key of ``ssl_cert_file``. Env: JOURNEYFLOW_REDIS_SSL_KEY_FILE."""

    __repr__ = masked_repr
    repair_check_s: float = setting(non_negative)
    """How often each profile is checked for a Redis data loss and rewritten from state
    (live worker); 0: no repair. Env: JOURNEYFLOW_REDIS_REPAIR_CHECK_S."""



@dataclass(frozen=True)
class OutageSettings:
    """How the live worker waits out a lost Redis or Kafka broker."""

    backoff_s: float = setting(positive)
    """First wait before retrying. Env: JOURNEYFLOW_OUTAGES_BACKOFF_S."""
    max_backoff_s: float = setting(positive)
    """Longest wait between retries. Env: JOURNEYFLOW_OUTAGES_MAX_BACKOFF_S."""
    give_up_after_s: float = setting(non_negative)
    """Exit (code 2) once an outage lasted this long; 0: never. Env: JOURNEYFLOW_OUTAGES_GIVE_UP_AFTER_S."""
