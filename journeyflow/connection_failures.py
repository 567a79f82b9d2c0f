"""Tell why a Kafka or Redis connection failed, in one line an operator can act on.

At connect time, :func:`check_kafka_tls` fails fast on a certificate that does not
verify or a protocol that does not match the port; :func:`explain_kafka_failure` and
:func:`explain_redis_failure` turn a failed connection into its reason (a wrong
password, plaintext to a TLS port, TLS to a plaintext port), never showing a password.
The options they read are built by :mod:`journeyflow.clients`.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from config.fields import mask_url
from journeyflow.clients import tls_context
from journeyflow.errors import ConnectionFailure

__all__ = ["check_kafka_tls", "explain_kafka_failure", "explain_redis_failure"]

# A failed connection is diagnosed with at most this much extra waiting.
_PROBE_S = 1.0


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _handshake(address: str, ctx: ssl.SSLContext, timeout_s: float) -> None:
    """Open a TLS session to ``address`` and close it; raise what went wrong."""
    host, port = _host_port(address)
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        with ctx.wrap_socket(raw, server_hostname=host):
            return


def _speaks_tls(address: str, timeout_s: float) -> bool:
    """Return whether ``address`` completes a TLS handshake (certificate not checked)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        _handshake(address, ctx, timeout_s)
    except (OSError, ValueError):
        return False
    return True


def _tls_problem(ex: BaseException) -> str:
    if isinstance(ex, ssl.SSLCertVerificationError):
        return f"its TLS certificate does not verify ({ex.verify_message})"
    text = str(ex)
    if "CERTIFICATE_REQUIRED" in text:
        return "it requires a client certificate (ssl_cert_file and ssl_key_file)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "it does not speak TLS"
    if "EOF occurred" in text or "UNEXPECTED_EOF" in text:
        # A server that wants a client certificate may just hang up (the alert can be lost).
        return "it closed the TLS handshake: it requires a client certificate (ssl_cert_file and ssl_key_file) or does not speak TLS"
    return f"the TLS handshake failed ({text})"


def _tls_listener(address: str, timeout_s: float) -> bool:
    """Return whether ``address`` answers a plaintext Kafka request the way a TLS listener does.

    Sends an ApiVersions v0 request: a Kafka broker answers with a response
    (a 4-byte size first); a TLS listener answers with a TLS alert (0x15) or
    hangs up without a word. Unreachable: ``False`` (left to the client).
    """
    import struct

    client = b"journeyflow-probe"
    header = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            first = sock.recv(1)
    except ConnectionResetError:
        return True  # stunnel and others hang up on bytes that are not TLS
    except OSError:
        return False
    return first in (b"", b"\x15", b"\x16")


def check_kafka_tls(brokers: Sequence[str], timeout_s: float, options: Mapping[str, Any]) -> None:
    """Raise ``ConnectionFailure`` at once when the first broker that accepts a connection
    cannot work with the protocol in ``options``: with TLS, a failed handshake (a certificate
    that does not verify, a port without TLS); without, a port that speaks TLS (kafka-python
    would retry until its timeout, or, plaintext against TLS, hang). Unreachable brokers are
    left to the client.
    """
    protocol = str(options.get("security_protocol", "PLAINTEXT"))
    deadline = time.monotonic() + timeout_s
    if not protocol.endswith("SSL"):
        for broker in brokers:
            remaining = max(0.1, deadline - time.monotonic())
            host, port = _host_port(broker)
            try:
                socket.create_connection((host, port), timeout=remaining).close()
            except (OSError, ValueError):
                continue
            if _tls_listener(broker, remaining):
                tls = "SASL_SSL" if protocol.startswith("SASL_") else "SSL"
                msg = (
                    f"kafka broker {broker} speaks TLS but kafka.security_protocol is {protocol}; "
                    f"set it to {tls} (and kafka.ssl_ca_file)"
                )
                raise ConnectionFailure(msg)
            return
        return
    ctx = tls_context(
        "kafka",
        options.get("ssl_cafile", ""),
        options.get("ssl_certfile", ""),
        options.get("ssl_keyfile", ""),
        bool(options.get("ssl_check_hostname", True)),
    )
    for broker in brokers:
        host, port = _host_port(broker)
        try:
            raw = socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
        except (OSError, ValueError):
            continue
        try:
            raw.settimeout(max(0.1, deadline - time.monotonic()))
            ctx.wrap_socket(raw, server_hostname=host).close()
            return
        except TimeoutError:
            # kafka-python would wait for this handshake forever: say it here.
            msg = (
                f"kafka broker {broker}: no answer to the TLS handshake within {timeout_s:g} s, so it does not "
                "speak TLS; is kafka.security_protocol right for this listener?"
            )
            raise ConnectionFailure(msg) from None
        except ssl.SSLError as ex:
            problem = _tls_problem(ex)
            hint = "; check kafka.ssl_ca_file" if isinstance(ex, ssl.SSLCertVerificationError) else ""
            if problem == "it does not speak TLS":
                hint = "; is kafka.security_protocol right for this listener?"
            msg = f"kafka broker {broker}: {problem}{hint}"
            raise ConnectionFailure(msg) from None
        except OSError as ex:
            msg = f"kafka broker {broker}: the TLS handshake failed ({ex}); is kafka.security_protocol right?"
            raise ConnectionFailure(msg) from None
        finally:
            raw.close()


def explain_kafka_failure(
    brokers: Sequence[str], timeout_s: float, options: Mapping[str, Any], ex: BaseException
) -> str:
    """Return the one-line reason a Kafka client could not start (``ex``), as precise as can be told."""
    from kafka import errors as kafka_errors

    hosts = ",".join(brokers)
    if isinstance(ex, kafka_errors.KafkaConfigurationError):
        return f"kafka client settings refused by kafka-python: {ex}"
    seen: BaseException | None = ex
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, kafka_errors.SaslAuthenticationFailedError):
            user = options.get("sasl_plain_username", "")
            mechanism = options.get("sasl_mechanism", "")
            return (
                f"kafka broker(s) {hosts} refused the {mechanism} login of user {user!r} "
                "(check kafka.sasl_username and the password)"
            )
        if isinstance(seen, kafka_errors.AuthorizationError) or "Authorization" in type(seen).__name__:
            return f"kafka broker(s) {hosts} denied access to user {options.get('sasl_plain_username', '')!r}: {seen}"
        seen = seen.__cause__ or seen.__context__
    return f"kafka broker(s) {hosts} unreachable after {timeout_s:g} s"



def explain_redis_failure(url: str, ex: BaseException, waited_s: float, options: Mapping[str, Any]) -> str:
    """Return the one-line reason a Redis connection failed (``ex``), never with a password."""
    import redis

    shown = mask_url(url)
    parts = urlsplit(url)
    user = options.get("username") or parts.username or "default"
    text = str(ex)
    anonymous = not options.get("password") and parts.password is None
    if anonymous and ("NOAUTH" in text or isinstance(ex, redis.exceptions.AuthenticationError)):
        return f"redis {shown} requires a login: set redis.username and redis.password_file (or put them in the url)"
    if isinstance(ex, redis.exceptions.AuthenticationError) or "WRONGPASS" in text:
        return (
            f"redis {shown} refused the login of user {user!r}: wrong password or user disabled "
            "(check redis.username and redis.password / password_file, or the url)"
        )
    if "NOAUTH" in text or "Authentication required" in text:
        return f"redis {shown} requires a login: set redis.username and redis.password_file (or put them in the url)"
    if "NOPERM" in text:
        return f"redis {shown}: user {user!r} lacks a permission journeyflow needs: {text}"
    if parts.scheme == "rediss" and "Timeout" in text and parts.hostname and parts.port:
        try:
            socket.create_connection((parts.hostname, parts.port), timeout=_PROBE_S).close()
        except OSError:
            pass
        else:
            return f"redis {shown}: no answer to the TLS handshake, so it does not speak TLS; use a redis:// url"
    if parts.scheme == "rediss":
        cause = ex.__cause__ or ex.__context__
        if isinstance(cause, ssl.SSLError) or "SSL" in text or "certificate" in text:
            problem = _tls_problem(cause if isinstance(cause, ssl.SSLError) else ex)
            if "certificate verify failed" in text and "does not verify" not in problem:
                problem = "its TLS certificate does not verify"
            hint = "; check redis.ssl_ca_file" if "verify" in problem else ""
            if problem == "it does not speak TLS":
                hint = "; use a redis:// url"
            return f"redis {shown}: {problem}{hint}"
    elif parts.hostname and parts.port and _speaks_tls(f"{parts.hostname}:{parts.port}", _PROBE_S):
        return f"redis {shown} speaks TLS: use a rediss:// url (and redis.ssl_ca_file)"
    return f"redis {shown} unreachable after {waited_s:.1f} s: {ex}"
