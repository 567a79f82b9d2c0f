"""Servers that speak TLS, on loopback, for the security tests.

* ``tls_files``: a throwaway CA, a server certificate (for ``127.0.0.1`` and
  ``localhost``) and a client certificate it signed, plus a second, unrelated
  CA that verifies nothing here. Made with ``openssl`` once per session.
* ``tls_redis``: a redis-server that listens only on a TLS port, requires a
  client certificate, and has one ACL user (``jf``) with a password; the
  ``default`` user is off.
* ``tls_kafka``: a Tansu broker behind Debian's ``stunnel4``, which terminates
  TLS (client certificate required) and forwards to the broker's plaintext
  port; the broker advertises the proxy's port, so every client connection
  goes through TLS. Tansu cannot serve TLS itself in a way kafka-python accepts
  (``shared/notes/kafka-and-redis-here.md``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import _port_open, _stop, _tansu_bin, _wait_until, free_port

REDIS_USER = "jf"
# Made-up, distinctive secrets: the leak test greps every output for them.
REDIS_PASSWORD = "redis-Pa55-7f3a9c-never-logged"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed none of the above."""


def make_tls_files(folder: Path) -> TlsFiles:
    """Write a CA, a server and a client certificate it signed, and an unrelated CA."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=journeyflow test {name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)
    return TlsFiles(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found: install it with `apt-get install -y openssl`")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@dataclass
class TlsRedis:
    port: int
    folder: Path
    files: TlsFiles
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The server's ``rediss://`` url, without user or password."""
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url, username=REDIS_USER, password=REDIS_PASSWORD, ssl_ca_certs=str(self.files.ca),
            ssl_certfile=str(self.files.client_cert), ssl_keyfile=str(self.files.client_key),
            decode_responses=True,
        )

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found: install it with `apt-get update && apt-get install -y redis-server`")
        config = self.folder / "redis-tls.conf"
        config.write_text(
            "\n".join([
                "port 0", f"tls-port {self.port}", "bind 127.0.0.1", 'save ""', "appendonly no",
                f"tls-cert-file {self.files.server_cert}", f"tls-key-file {self.files.server_key}",
                f"tls-ca-cert-file {self.files.ca}", "tls-auth-clients yes",
                "user default off", f"user {REDIS_USER} on >{REDIS_PASSWORD} ~* &* +@all", "",
            ])
        )
        log = self.folder / "redis-tls.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen([binary, str(config)], stdout=out, stderr=subprocess.STDOUT)
        _wait_until(self._answers, self.proc, "redis-server (TLS)", log)

    def _answers(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        _stop(self.proc, grace_s=5)


@pytest.fixture(scope="session")
def tls_redis(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    server = TlsRedis(free_port(), tmp_path_factory.mktemp("redis-tls"), tls_files)
    server.start()
    yield server
    server.stop()


@dataclass
class TlsKafka:
    """A Tansu broker reachable only through a TLS proxy (stunnel4) at ``bootstrap``."""

    broker_port: int
    proxy_port: int
    folder: Path
    files: TlsFiles
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"

    def env(self) -> dict[str, str]:
        """The settings of a client of this broker (mutual TLS)."""
        return {
            "JOURNEYFLOW_KAFKA_BROKERS": self.bootstrap,
            "JOURNEYFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
            "JOURNEYFLOW_KAFKA_SSL_CA_FILE": str(self.files.ca),
            "JOURNEYFLOW_KAFKA_SSL_CERT_FILE": str(self.files.client_cert),
            "JOURNEYFLOW_KAFKA_SSL_KEY_FILE": str(self.files.client_key),
        }

    def start(self) -> None:
        stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
        if stunnel is None:
            pytest.fail("stunnel4 not found: install it with `make services` (apt-get install -y stunnel4)")
        broker_log = self.folder / "tansu.log"
        listener = f"tcp://127.0.0.1:{self.broker_port}"
        advertised = f"tcp://127.0.0.1:{self.proxy_port}"
        with broker_log.open("ab") as out:
            broker = subprocess.Popen(
                [_tansu_bin(), "broker", "--listener-url", listener, "--advertised-listener-url", advertised,
                 "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        self.procs.append(broker)
        _wait_until(lambda: _port_open(self.broker_port), broker, "tansu broker", broker_log)
        config = self.folder / "stunnel.conf"
        proxy_log = self.folder / "stunnel.log"
        config.write_text(
            "\n".join([
                "foreground = yes", "pid =", f"output = {proxy_log}", "debug = 4", "[kafka]",
                f"accept = 127.0.0.1:{self.proxy_port}", f"connect = 127.0.0.1:{self.broker_port}",
                f"cert = {self.files.server_cert}", f"key = {self.files.server_key}",
                f"CAfile = {self.files.ca}", "verifyChain = yes", "requireCert = yes", "",
            ])
        )
        with (self.folder / "stunnel.out").open("ab") as out:
            proxy = subprocess.Popen([stunnel, str(config)], stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proxy)
        _wait_until(lambda: _port_open(self.proxy_port), proxy, "stunnel4", proxy_log)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc, grace_s=2)


@pytest.fixture(scope="session")
def tls_kafka(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    broker = TlsKafka(free_port(), free_port(), tmp_path_factory.mktemp("kafka-tls"), tls_files)
    broker.start()
    yield broker
    broker.stop()
