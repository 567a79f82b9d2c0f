"""TLS, ACL users and SASL settings against real servers on loopback, success and failure.

Redis: a TLS-only redis-server with an ACL user and client certificates
(``tls_redis``). Kafka: Tansu behind a TLS-terminating stunnel4
(``tls_kafka``), and the plaintext session broker for the opposite mistake.
Every failure must be one line naming the cause, well within the connect
timeout, and must never show a password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.settings import load_settings
from flows.kafka import check_brokers, ensure_topics, topic_partitions
from flows.kafka_sink import KafkaSink
from flows.kafka_source import KafkaSource
from journeyflow.clients import Secret, kafka_options, redis_options
from journeyflow.errors import ConfigError, ConnectionFailure
from journeyflow.records import SegmentChange
from state.redis_store import RedisStore
from tests.conftest import KafkaBroker
from tests.security.conftest import REDIS_PASSWORD, REDIS_USER, TlsFiles, TlsKafka, TlsRedis

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]


def _redis_env(server: TlsRedis, password_file: Path, **extra: str) -> dict[str, str]:
    return {
        "JOURNEYFLOW_REDIS_URL": server.url,
        "JOURNEYFLOW_REDIS_USERNAME": REDIS_USER,
        "JOURNEYFLOW_REDIS_PASSWORD_FILE": str(password_file),
        "JOURNEYFLOW_REDIS_SSL_CA_FILE": str(server.files.ca),
        "JOURNEYFLOW_REDIS_SSL_CERT_FILE": str(server.files.client_cert),
        "JOURNEYFLOW_REDIS_SSL_KEY_FILE": str(server.files.client_key),
        "JOURNEYFLOW_REDIS_CONNECT_TIMEOUT_S": "5",
        **extra,
    }


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis-password"
    path.write_text(REDIS_PASSWORD + "\n")
    return path


def _connect_fails(env: dict[str, str]) -> tuple[str, float]:
    settings = load_settings(env=env)
    started = time.monotonic()
    with pytest.raises(ConnectionFailure) as failure:
        RedisStore.from_settings(settings.redis)
    message = str(failure.value)
    assert "\n" not in message and REDIS_PASSWORD not in message
    return message, time.monotonic() - started


# --- Redis -----------------------------------------------------------------------------------


def test_redis_over_tls_with_an_acl_user_from_a_password_file(tls_redis: TlsRedis, password_file: Path) -> None:
    store = RedisStore.from_settings(load_settings(env=_redis_env(tls_redis, password_file)).redis)
    try:
        store.apply([SegmentChange("u-tls", 0, ("vip",), (), ("vip",), None, {})])
        assert store.members("vip") == {"u-tls"}
    finally:
        store.close()
    # The user and password may be in the url instead.
    url = f"rediss://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.port}/0"
    env = _redis_env(tls_redis, password_file, JOURNEYFLOW_REDIS_URL=url)
    del env["JOURNEYFLOW_REDIS_PASSWORD_FILE"], env["JOURNEYFLOW_REDIS_USERNAME"]
    store = RedisStore.from_settings(load_settings(env=env).redis)
    assert store.client.ping()
    store.close()


@pytest.mark.parametrize("fault", ["wrong_password", "no_login", "plaintext_to_tls", "unknown_ca", "no_client_cert"])
def test_redis_failures_are_one_line_within_the_timeout(
    fault: str, tls_redis: TlsRedis, password_file: Path, tmp_path: Path
) -> None:
    env = _redis_env(tls_redis, password_file)
    if fault == "wrong_password":
        (tmp_path / "wrong").write_text("not-the-password")
        env["JOURNEYFLOW_REDIS_PASSWORD_FILE"] = str(tmp_path / "wrong")
        expected = f"refused the login of user '{REDIS_USER}': wrong password"
    elif fault == "no_login":
        del env["JOURNEYFLOW_REDIS_PASSWORD_FILE"], env["JOURNEYFLOW_REDIS_USERNAME"]
        expected = "requires a login"
    elif fault == "plaintext_to_tls":
        env = {"JOURNEYFLOW_REDIS_URL": f"redis://127.0.0.1:{tls_redis.port}/0", "JOURNEYFLOW_REDIS_CONNECT_TIMEOUT_S": "5"}
        expected = "speaks TLS: use a rediss:// url"
    elif fault == "unknown_ca":
        env["JOURNEYFLOW_REDIS_SSL_CA_FILE"] = str(tls_redis.files.other_ca)
        expected = "its TLS certificate does not verify"
    else:
        del env["JOURNEYFLOW_REDIS_SSL_CERT_FILE"], env["JOURNEYFLOW_REDIS_SSL_KEY_FILE"]
        expected = "requires a client certificate"  # an alert, or under load just a hang-up
    message, took = _connect_fails(env)
    assert expected in message
    assert took < 5 + 1.5


def test_redis_tls_to_a_plaintext_port_says_so(redis_url: str) -> None:
    url = redis_url.replace("redis://", "rediss://")
    message, took = _connect_fails({"JOURNEYFLOW_REDIS_URL": url, "JOURNEYFLOW_REDIS_CONNECT_TIMEOUT_S": "5"})
    assert "no answer to the TLS handshake, so it does not speak TLS; use a redis:// url" in message
    assert took < 5 + 1.5


def test_redis_settings_that_cannot_work_stop_at_load(tls_files: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="redis.ssl_ca_file is set but redis.url is not rediss://"):
        load_settings(env={"JOURNEYFLOW_REDIS_URL": "redis://h:1/0", "JOURNEYFLOW_REDIS_SSL_CA_FILE": str(tls_files.ca)})
    with pytest.raises(ConfigError, match="redis.password and redis.password_file are both set"):
        load_settings(env={"JOURNEYFLOW_REDIS_PASSWORD": "x", "JOURNEYFLOW_REDIS_PASSWORD_FILE": "/f"})
    settings = load_settings(env={"JOURNEYFLOW_REDIS_URL": "rediss://u:pw@h:1/0", "JOURNEYFLOW_REDIS_PASSWORD": "x"})
    with pytest.raises(ConfigError, match="both in redis.url and in redis.password"):
        redis_options(settings.redis)
    missing = tmp_path / "no-such-ca.pem"
    settings = load_settings(env={"JOURNEYFLOW_REDIS_URL": "rediss://h:1/0", "JOURNEYFLOW_REDIS_SSL_CA_FILE": str(missing)})
    with pytest.raises(ConfigError, match=r"redis.ssl_ca_file '.*no-such-ca.pem' cannot be read: No such file"):
        redis_options(settings.redis)
    options = redis_options(load_settings(env={"JOURNEYFLOW_REDIS_PASSWORD": "s3cret"}).redis)
    assert isinstance(options["password"], Secret) and repr(options) == "{'password': ***}"


# --- Kafka -----------------------------------------------------------------------------------


def test_kafka_over_tls_admin_source_and_sink(tls_kafka: TlsKafka) -> None:
    kafka = load_settings(env=tls_kafka.env()).kafka
    options = kafka_options(kafka)
    assert options["security_protocol"] == "SSL" and options["ssl_check_hostname"] is True
    check_brokers([tls_kafka.bootstrap], 10, options=options)
    ensure_topics([tls_kafka.bootstrap], {"tls-io": 2}, 10, options=options)
    assert topic_partitions([tls_kafka.bootstrap], "tls-io", 10, options=options) == [0, 1]
    source = KafkaSource.from_settings(kafka, "tls-io")
    sink = KafkaSink.from_settings(kafka, "tls-io")
    assert source.options == options == sink.options and sink.producer["acks"] == "all"
    partition = sink.build("write", 0, 1)
    partition.write_batch([SegmentChange(f"u{i}", i, ("vip",), (), ("vip",), None, {}) for i in range(10)])
    partition.close()
    read: list[bytes] = []
    for part in source.list_parts():
        reader = source.build_part("read", part, None)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(read) < 10:
            read.extend(r.data for r in reader.next_batch())
            time.sleep(0.05)
        reader.close()
    assert len(read) == 10


@pytest.mark.parametrize("fault", ["plaintext_to_tls", "unknown_ca", "tls_to_plaintext"])
def test_kafka_failures_are_one_line_within_the_timeout(
    fault: str, tls_kafka: TlsKafka, kafka_broker: KafkaBroker
) -> None:
    env = tls_kafka.env()
    if fault == "plaintext_to_tls":
        env = {"JOURNEYFLOW_KAFKA_BROKERS": tls_kafka.bootstrap}
        expected = f"kafka broker {tls_kafka.bootstrap} speaks TLS but kafka.security_protocol is PLAINTEXT"
    elif fault == "unknown_ca":
        env["JOURNEYFLOW_KAFKA_SSL_CA_FILE"] = str(tls_kafka.files.other_ca)
        expected = f"kafka broker {tls_kafka.bootstrap}: its TLS certificate does not verify"
    else:
        env["JOURNEYFLOW_KAFKA_BROKERS"] = kafka_broker.bootstrap
        expected = f"kafka broker {kafka_broker.bootstrap}: no answer to the TLS handshake within 4 s"
    kafka = load_settings(env={**env, "JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S": "4"}).kafka
    started = time.monotonic()
    with pytest.raises(ConnectionFailure) as failure:
        check_brokers(kafka.brokers.split(","), kafka.connect_timeout_s, options=kafka_options(kafka))
    assert expected in str(failure.value) and "\n" not in str(failure.value)
    assert time.monotonic() - started < 4 + 1.5


def test_kafka_security_settings_are_checked_at_start_up(tls_files: TlsFiles, tmp_path: Path) -> None:
    sasl = {"JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    with pytest.raises(ConfigError, match="kafka.sasl_username must be set with security_protocol SASL_SSL"):
        load_settings(env=sasl)
    with pytest.raises(ConfigError, match="kafka.sasl_password or kafka.sasl_password_file must be set"):
        load_settings(env={**sasl, "JOURNEYFLOW_KAFKA_SASL_USERNAME": "jf"})
    with pytest.raises(ConfigError, match="kafka.sasl_mechanism must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"):
        load_settings(env={"JOURNEYFLOW_KAFKA_SASL_MECHANISM": "GSSAPI"})
    with pytest.raises(ConfigError, match="kafka.ssl_ca_file is set but kafka.security_protocol is PLAINTEXT"):
        load_settings(env={"JOURNEYFLOW_KAFKA_SSL_CA_FILE": str(tls_files.ca)})
    unreadable = tmp_path / "ca.pem"
    unreadable.write_text("not a certificate")
    kafka = load_settings(env={"JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "JOURNEYFLOW_KAFKA_SSL_CA_FILE": str(unreadable)}).kafka
    with pytest.raises(ConfigError, match="kafka.ssl_ca_file .* must hold PEM certificates"):
        kafka_options(kafka)
    secret = tmp_path / "sasl"
    secret.write_text("sasl-secret-value\n")
    kafka = load_settings(env={**sasl, "JOURNEYFLOW_KAFKA_SASL_USERNAME": "jf",
                               "JOURNEYFLOW_KAFKA_SASL_PASSWORD_FILE": str(secret),
                               "JOURNEYFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}).kafka
    options = kafka_options(kafka)
    assert options["sasl_plain_password"] == "sasl-secret-value" and "sasl-secret-value" not in repr(options)
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("SCRAM-SHA-512", "jf")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "journeyflow.cli", *args], capture_output=True, text=True, timeout=120,
        cwd=REPO, env={**clean, **env},
    )


def test_the_worker_stops_with_one_line_on_a_security_problem(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    salt = {"JOURNEYFLOW_PRIVACY_SALT": "a-test-salt"}
    cases = [
        ({"JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "kafka.sasl_username must be set"),
        ({**tls_kafka.env(), "JOURNEYFLOW_KAFKA_SSL_CA_FILE": str(tmp_path / "gone.pem")}, "cannot be read"),
        ({**tls_kafka.env(), "JOURNEYFLOW_KAFKA_SSL_CA_FILE": str(tls_kafka.files.other_ca)}, "does not verify"),
    ]
    for env, expected in cases:
        result = _cli("run", env={**salt, **env, "JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S": "4"})
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("journeyflow: error: ") and expected in lines[0], lines


def test_run_refuses_the_shipped_salt_unless_allowed(tmp_path: Path) -> None:
    dead = {"JOURNEYFLOW_KAFKA_BROKERS": "127.0.0.1:9", "JOURNEYFLOW_KAFKA_CONNECT_TIMEOUT_S": "1"}
    result = _cli("run", env=dead)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "journeyflow: error: privacy.salt is the shipped default, which anyone can read: set "
        "JOURNEYFLOW_PRIVACY_SALT (or [privacy] salt_file, a file holding it) to a long random secret, "
        "or [privacy] allow_default_salt = true for a demo"
    ]
    # Allowed for a demo, or with a salt file: start-up goes on (and stops at the dead broker).
    salt_file = tmp_path / "salt"
    salt_file.write_text("a-salt-from-a-file\n")
    for env in ({"JOURNEYFLOW_PRIVACY_ALLOW_DEFAULT_SALT": "true"}, {"JOURNEYFLOW_PRIVACY_SALT_FILE": str(salt_file)}):
        result = _cli("run", env={**dead, **env})
        assert result.returncode == 2 and "privacy.salt" not in result.stderr
        assert "kafka broker(s) 127.0.0.1:9 unreachable" in result.stderr.strip().splitlines()[-1]
    assert load_settings(env={"JOURNEYFLOW_PRIVACY_SALT_FILE": str(salt_file)}).privacy.salt == "a-salt-from-a-file"
