"""This process's Kafka connection settings: the client properties of --kafka-config.

Every program that talks to Kafka passes ``**client_settings()`` to each kafka-python client
it makes. The file comes from ``--kafka-config FILE`` (``use_kafka_config``, which also puts
it in the environment so the stages a program starts connect the same way) or from the
``KAFKA_CONFIG`` environment variable; without one, clients connect in plaintext as before.

``explain`` words the failures a secured cluster gives (a refused login, a missing ACL) as the
one line a person can act on, naming the user and what was refused (``refused``: as the
UserError to raise; ``refusal_in`` finds one kafka-python wrapped in another error);
``diagnose`` finds out why no broker answered (an untrusted certificate, TLS on one side only,
a refused login) by connecting itself; ``not_connected`` tries both, in that order.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kafka import errors as kafka_errors

from smarthome.client_properties import ClientProperties, read_client_properties
from smarthome.errors import UserError

ENV = "KAFKA_CONFIG"
_cache: dict[tuple[str, int], tuple[ClientProperties, dict[str, Any]]] = {}


def use_kafka_config(path: str | Path | None) -> ClientProperties | None:
    """Read ``path`` now (a bad file is a UserError before anything starts) and make it this
    process's, and its children's, settings; None leaves KAFKA_CONFIG as it is."""
    if path:
        resolved = str(Path(path).expanduser().resolve())
        read_client_properties(resolved)  # a bad file is not put in force
        os.environ[ENV] = resolved
    return current()


@contextlib.contextmanager
def kafka_config_in_force(path: str | Path | None) -> Iterator[ClientProperties | None]:
    """``use_kafka_config(path)`` for the ``with`` block only: KAFKA_CONFIG is put back as it
    was (unset if it was) on the way out, so a run made in-process (a test's) leaves its
    logins to no one. None changes nothing."""
    before = os.environ.get(ENV)
    try:
        yield use_kafka_config(path)
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def current() -> ClientProperties | None:
    """The properties in force (KAFKA_CONFIG), or None: plaintext with no login."""
    return _loaded()[0]


def client_settings() -> dict[str, Any]:
    """kafka-python keyword arguments for the properties in force ({} without a file)."""
    return dict(_loaded()[1])


def _loaded() -> tuple[ClientProperties | None, dict[str, Any]]:
    path = os.environ.get(ENV, "").strip()
    if not path:
        return None, {}
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        stamp = -1  # read_client_properties says it is missing
    if (path, stamp) not in _cache:
        properties = read_client_properties(path)
        _cache.clear()
        _cache[(path, stamp)] = (properties, properties.kafka_python())
    return _cache[(path, stamp)]


def bootstrap_servers(given: str | None, default: str) -> str:
    """--bootstrap-servers, else KAFKA_BOOTSTRAP_SERVERS, else the file's bootstrap.servers,
    else ``default``."""
    if given:
        return given
    from_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if from_env:
        return from_env
    properties = current()
    if properties and properties.bootstrap_servers:
        return properties.bootstrap_servers
    return default


def _user() -> str:
    properties = current()
    if properties is None or not properties.uses_sasl:
        return "an anonymous client (no --kafka-config)"
    return f"user {properties.username}"


def _names(exc: BaseException) -> str:
    found: list[str] = []
    for arg in exc.args:
        if isinstance(arg, (set, frozenset, list, tuple)):
            found.extend(str(a) for a in arg)
        elif isinstance(arg, str) and arg and " " not in arg:
            found.append(arg)
    return ", ".join(sorted(set(found)))


def explain(exc: BaseException, topic_action: str = "use", what: str = "") -> str | None:
    """One line for an authentication or authorization failure, None for anything else.

    ``topic_action`` is what the program was doing to its topics ("read", "write");
    ``what`` names the group or transactional id when the error does not. A refusal that
    kafka-python hands on inside another error is found there (``refusal_in``).
    """
    exc = refusal_in(exc) or exc
    if isinstance(exc, kafka_errors.SaslAuthenticationFailedError):
        properties = current()
        mechanism = properties.sasl_mechanism if properties else "SASL"
        source = f" (check the login in {properties.source})" if properties else ""
        return f"authentication failed for {_user()} with {mechanism}{source}"
    ask = "ask the cluster's admin for an ACL"
    if isinstance(exc, kafka_errors.TopicAuthorizationFailedError):
        topics = _names(exc) or what
        return f"{_user()} may not {topic_action} {_named('topic', topics)}; {ask}"
    if isinstance(exc, kafka_errors.GroupAuthorizationFailedError):
        group = _names(exc) or what
        return f"{_user()} may not use {_named('consumer group', group)}; {ask}"
    if isinstance(exc, kafka_errors.TransactionalIdAuthorizationFailedError):
        name = what or _names(exc)
        return f"{_user()} may not use {_named('transactional id', name)}; {ask}"
    if isinstance(exc, kafka_errors.ClusterAuthorizationFailedError):
        return f"{_user()} may not {what or 'do that'} on this cluster (a cluster ACL is missing)"
    if isinstance(exc, kafka_errors.AuthorizationError):  # any other resource
        return f"{_user()} was refused ({type(exc).__name__}); {ask}"
    return None


def _named(kind: str, name: str) -> str:
    """``topic smart_home_stream``, or ``its topic`` when the name is not known."""
    return f"{kind} {name}" if name else f"its {kind}"


_REFUSALS = (kafka_errors.SaslAuthenticationFailedError, kafka_errors.AuthorizationError)


def refusal_in(exc: BaseException) -> BaseException | None:
    """The refusal (a failed login, a missing ACL) ``exc`` is or carries, else None.

    kafka-python hands some on inside another error: as an argument (``KafkaError("Cannot
    perform send ...", refusal)``), as its cause, or only named in its text (``KafkaError(
    "Unexpected error in InitProducerIdResponse: [Error 31] ClusterAuthorizationFailedError")``:
    the protocol's error code says which)."""
    if isinstance(exc, _REFUSALS):
        return exc
    carried = [a for a in exc.args if isinstance(a, BaseException)] + [exc.__cause__]
    found = next((c for c in carried if isinstance(c, _REFUSALS)), None)
    if found is not None:
        return found
    for code in re.findall(r"\[Error (\d+)\]", str(exc)):
        kind = kafka_errors.for_code(int(code))
        if issubclass(kind, _REFUSALS):
            return kind()
    return None


def refused(exc: BaseException, topic_action: str = "use", what: str = "") -> UserError | None:
    """``explain``'s line as the UserError to raise, or None: not a refusal (it may pass)."""
    line = explain(exc, topic_action, what)
    return UserError(line) if line else None


def not_connected(
    exc: BaseException, bootstrap: str, otherwise: str, what: str = "", timeout: float = 5.0
) -> str:
    """Why a client could not connect to ``bootstrap``, in one line: a refused login
    (``explain``), what the connection shows (an untrusted certificate, TLS on one side only:
    ``diagnose``), else ``otherwise`` (no broker there, most likely)."""
    return explain(exc, "use", what) or diagnose(bootstrap, timeout) or otherwise


def diagnose(bootstrap: str, timeout: float = 5.0) -> str | None:
    """Why a client with the settings in force gets no answer from ``bootstrap``, when the
    connection itself says: the broker's certificate is not trusted, one side uses TLS and
    the other does not, or the broker refuses the login. None when it cannot tell (the
    caller keeps its own message).

    The login is tried here because kafka-python (3.0.12) does not say: a refused login
    makes its clients retry until their bootstrap timeout and raise a bare
    KafkaTimeoutError (the broker's answer arrives with the connection's close, and its
    transport drops data read together with the end of the stream)."""
    properties = current()
    for address in filter(None, (a.strip() for a in bootstrap.split(","))):
        host, port = _host_port(address)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            continue
        with sock:
            if properties is not None and properties.uses_tls:
                return _diagnose_tls(sock, host, address, properties)
            found = _diagnose_plaintext(sock, host, address, properties)
        if found is None and properties is not None and properties.uses_sasl:
            try:  # SASL_PLAINTEXT: the TLS probe spent that connection; log in on a new one
                with socket.create_connection((host, port), timeout=timeout) as sock:
                    return _diagnose_login(sock, address, properties)
            except OSError:
                return None
        return found
    return None


def _host_port(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; no port: Kafka's 9092) as kafka-python reads it."""
    host, colon, port = address.rpartition(":")
    if not colon or host.endswith(":") or (":" in host and not host.endswith("]")):
        host, port = address, ""  # no port, or a bare IPv6 address
    try:
        number = int(port) if port else 9092
    except ValueError:
        number = 9092
    return host.strip("[]") or "localhost", number


def _diagnose_tls(
    sock: socket.socket, host: str, address: str, properties: ClientProperties
) -> str | None:
    try:
        tls = properties.ssl_context().wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        return None  # something answers slowly, or not at all: that says nothing
    except ssl.SSLCertVerificationError as exc:
        ca = properties.ca_file or "the system's CA list"
        if exc.verify_code == 62 or "hostname" in str(exc.verify_message).lower():
            return (
                f"the broker's certificate at {address} is not valid for {host}"
                f" ({exc.verify_message}); connect by a name it holds"
            )
        return (
            f"the broker's certificate at {address} is not signed by the CA in {ca}"
            f" ({exc.verify_message}); set ssl.truststore.location (or ssl.ca.location) in"
            f" {properties.source} to the cluster's CA"
        )
    except (ssl.SSLError, OSError):
        return (
            f"the broker at {address} does not speak TLS; set security.protocol to PLAINTEXT"
            f" or SASL_PLAINTEXT in {properties.source}, or use the cluster's TLS port"
        )
    with tls:  # TLS is fine: is the login?
        return _diagnose_login(tls, address, properties) if properties.uses_sasl else None


def _diagnose_login(sock: socket.socket, address: str, properties: ClientProperties) -> str | None:
    """What the broker answers this client's SASL login with, worded; None if it accepts
    it or does not answer as Kafka does."""
    from kafka.net.sasl import get_sasl_mechanism
    from kafka.protocol.parser import KafkaProtocol
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

    protocol = KafkaProtocol(client_id="smarthome-diagnose")

    def call(request: Any) -> Any:
        protocol.send_request(request)
        sock.sendall(protocol.send_bytes())
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError("closed by the broker")
            for _, response in protocol.receive_bytes(data):
                return response

    mechanism = properties.sasl_mechanism
    try:
        handshake = call(SaslHandshakeRequest(version=1, mechanism=mechanism))
    except Exception:  # not Kafka, or not answering: cannot tell
        return None
    if handshake.error_code:
        offered = ", ".join(handshake.mechanisms) or "none"
        return (
            f"the broker at {address} does not take {mechanism} logins (it takes {offered});"
            f" set sasl.mechanism in {properties.source}"
        )
    try:
        login = get_sasl_mechanism(mechanism)(host=address, **client_settings())
        while not login.is_done():
            answer = call(SaslAuthenticateRequest(version=1, auth_bytes=login.auth_bytes()))
            if answer.error_code:
                break
            login.receive(answer.auth_bytes)
        else:
            return None  # the login is accepted: the failure is elsewhere
    except TimeoutError:
        return None  # no answer in time says nothing
    except OSError:
        pass  # a broker closes the connection of a refused login, its answer sent or not
    except Exception:  # a server signature that does not match, an answer not understood
        return None
    return explain(kafka_errors.SaslAuthenticationFailedError())


def _diagnose_plaintext(
    sock: socket.socket, host: str, address: str, properties: ClientProperties | None
) -> str | None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=host or None):
            pass
    except (ssl.SSLError, OSError):
        return None  # not TLS: a plaintext broker that failed otherwise
    if properties is None:
        fix = (
            "pass --kafka-config FILE (or set KAFKA_CONFIG) with security.protocol=SASL_SSL"
            " and the cluster's CA"
        )
    else:
        fix = (
            f"set security.protocol to SASL_SSL (or SSL) in {properties.source}"
            f" (it says {properties.security_protocol})"
        )
    return f"the broker at {address} expects TLS, and this client connects in plaintext; {fix}"
