"""Kafka client properties (--kafka-config) and the wording of a secured cluster's refusals,
without a broker: the file's parsing, ``explain``'s lines, the brokers' precedence, and
``diagnose`` against small local servers (plaintext, TLS with a self-signed certificate, and a
fake Kafka that refuses a SASL login)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import errors as kafka_errors

from smarthome import kafka_settings
from smarthome.client_properties import (
    client_properties,
    read_client_properties,
    write_client_properties,
)
from smarthome.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pa55-w0rd-Never-Shown"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_config_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no KAFKA_CONFIG and no KAFKA_BOOTSTRAP_SERVERS of the shell."""
    monkeypatch.delenv(kafka_settings.ENV, raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


def in_force(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv(kafka_settings.ENV, str(path))


# -- certificates (cryptography: nothing downloaded, no keytool) ---------------------------
def certificate(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate (PEM) for 127.0.0.1 and localhost, and its key (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(alt, critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def broker_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("broker-cert")
    cert, key = certificate("broker")
    return write_bytes(folder / "broker.pem", cert), write_bytes(folder / "broker-key.pem", key)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bytes(tmp_path_factory.mktemp("other-ca") / "other-ca.pem", certificate("x")[0])


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- parsing ----------------------------------------------------------------------------------
def test_jaas_in_double_quotes_with_java_escapes(tmp_path: Path) -> None:
    # in the file, a backslash is written twice (properties), then JAAS reads \" and \\
    path = write(
        tmp_path / "c.properties",
        "bootstrap.servers = b1:9093, b2:9093\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        f"sasl.jaas.config={SCRAM} required \\\n"
        '    username="alice" password="a\\\\"b\\\\\\\\c";\n',
    )
    found = read_client_properties(path)
    assert found.bootstrap_servers == "b1:9093,b2:9093"
    assert (found.security_protocol, found.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert found.username == "alice"
    assert found.password is not None and found.password.get_secret_value() == 'a"b\\c'
    assert found.source == path.resolve()


def test_jaas_in_single_quotes_and_unquoted(tmp_path: Path) -> None:
    single = write(
        tmp_path / "single.properties",
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required"
        " username='bob' password='semi;colon \"quoted\"';\n",
    )
    found = read_client_properties(single)
    assert found.username == "bob"
    assert found.password is not None
    assert found.password.get_secret_value() == 'semi;colon "quoted"'
    bare = write(
        tmp_path / "bare.properties",
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
        f"sasl.jaas.config={SCRAM} required username=carol password=s3cret;\n",
    )
    found = read_client_properties(bare)
    assert (found.username, found.password.get_secret_value()) == ("carol", "s3cret")


def test_librdkafka_login_keeps_a_password_as_java_reads_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.properties",
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=scram-sha-256\n"
        "sasl.username=dave\nsasl.password=ends with a blank \n",
    )
    found = read_client_properties(path)
    assert (found.sasl_mechanism, found.username) == ("SCRAM-SHA-256", "dave")
    assert found.password.get_secret_value() == "ends with a blank "
    settings = found.kafka_python()
    assert settings == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "dave",
        "sasl_plain_password": "ends with a blank ",
    }


def test_the_java_form_reads_back_the_same_login(tmp_path: Path) -> None:
    tricky = 'q"uo\\te; x'
    path = write_client_properties(
        tmp_path / "c.properties",
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": f'{SCRAM} required username="eve" password='
            + '"'
            + tricky.replace("\\", "\\\\").replace('"', '\\"')
            + '";',
        },
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    found = read_client_properties(path)
    assert found.password.get_secret_value() == tricky
    java = found.java_properties()
    again = client_properties(java, path)
    assert (again.username, again.password.get_secret_value()) == ("eve", tricky)


def test_pem_truststore_and_ca_location_are_read_next_to_the_file(
    tmp_path: Path, broker_cert: tuple[Path, Path]
) -> None:
    folder = tmp_path / "conf"
    (folder / "certs").mkdir(parents=True)
    (folder / "certs" / "ca.pem").write_bytes(broker_cert[0].read_bytes())
    path = write(
        folder / "c.properties",
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=certs/ca.pem\n"
        "ssl.endpoint.identification.algorithm=\n",
    )
    found = read_client_properties(path)
    assert found.ca_file == (folder / "certs" / "ca.pem").resolve()
    assert found.check_hostname is False
    settings = found.kafka_python()
    assert settings["security_protocol"] == "SSL"
    assert isinstance(settings["ssl_context"], ssl.SSLContext)
    assert settings["ssl_context"].check_hostname is False
    assert found.java_properties()["ssl.truststore.location"] == str(found.ca_file)
    librdkafka = write(
        folder / "r.properties", "security.protocol=SSL\nssl.ca.location=certs/ca.pem\n"
    )
    assert read_client_properties(librdkafka).ca_file == found.ca_file


def test_pkcs12_truststore(tmp_path: Path, broker_cert: tuple[Path, Path]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    cert = x509.load_pem_x509_certificate(broker_cert[0].read_bytes())
    store = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(cert, b"ca")], BestAvailableEncryption(b"changeit")
    )
    write_bytes(tmp_path / "truststore.p12", store)
    path = write(
        tmp_path / "c.properties",
        "security.protocol=SSL\nssl.truststore.location=truststore.p12\n"
        "ssl.truststore.type=PKCS12\nssl.truststore.password=changeit\n",
    )
    found = read_client_properties(path)
    assert found.ca_pem is not None and "BEGIN CERTIFICATE" in found.ca_pem
    assert found.kafka_python()["ssl_context"].cert_store_stats()["x509_ca"] == 1
    assert found.java_properties()["ssl.truststore.certificates"] == found.ca_pem
    wrong = write(
        tmp_path / "w.properties",
        "security.protocol=SSL\nssl.truststore.location=truststore.p12\n"
        "ssl.truststore.password=not-it\n",
    )
    with pytest.raises(UserError, match=r"cannot open .*truststore\.p12 as PKCS12"):
        read_client_properties(wrong)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("securty.protocol=SSL\n", r"^securty\.protocol in .*: unknown key"),
        ("group.id=mine\n", r"^group\.id in .*: not allowed here"),
        ("acks=1\n", r"^acks in .*: '1'; the stages need acks=all"),
        ("security.protocol=TLS\n", r"^security\.protocol in .*: 'TLS' is not one of"),
        ("sasl.mechanism=PLAIN\n", r"^sasl\.mechanism in .*: security\.protocol=PLAINTEXT"),
        ("security.protocol=SSL\nssl.truststore.location=nope.pem\n", r"nope\.pem does not"),
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=x\n",
            r"^sasl\.password in .*: missing",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path / "c.properties", text)
    with pytest.raises(UserError, match=named) as raised:
        read_client_properties(path)
    assert "\n" not in str(raised.value)


def test_acks_all_is_accepted(tmp_path: Path) -> None:
    for acks in ("all", "-1"):
        assert read_client_properties(write(tmp_path / "c.properties", f"acks={acks}\n"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nowhere\.properties does not exist"):
        read_client_properties(tmp_path / "nowhere.properties")
    with pytest.raises(UserError, match=r"nowhere\.properties does not exist"):
        kafka_settings.use_kafka_config(tmp_path / "nowhere.properties")


def scram_file(tmp_path: Path, name: str = "c.properties", protocol: str = "SASL_SSL") -> Path:
    return write(
        tmp_path / name,
        f"security.protocol={protocol}\nsasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM} required username="alice" password="{PASSWORD}";\n',
    )


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    found = read_client_properties(scram_file(tmp_path))
    for shown in (repr(found), str(found), found.describe()):
        assert PASSWORD not in shown
    assert "alice" in found.describe()
    wrong_module = write(
        tmp_path / "m.properties",
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config="
        f'org.apache.kafka.common.security.plain.PlainLoginModule required username="a"'
        f' password="{PASSWORD}";\n',
    )
    with pytest.raises(UserError) as raised:
        read_client_properties(wrong_module)
    assert PASSWORD not in str(raised.value)


def test_help_shows_no_secret(tmp_path: Path) -> None:
    env = {**os.environ, kafka_settings.ENV: str(scram_file(tmp_path))}
    done = subprocess.run(
        [sys.executable, "kafka_producer.py", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--kafka-config" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr


# -- the settings in force --------------------------------------------------------------------
def test_use_kafka_config_puts_the_file_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scram_file(tmp_path)
    assert kafka_settings.current() is None and kafka_settings.client_settings() == {}
    found = kafka_settings.use_kafka_config("c.properties")
    assert os.environ[kafka_settings.ENV] == str((tmp_path / "c.properties").resolve())
    assert found is not None and found.username == "alice"
    assert kafka_settings.client_settings()["sasl_plain_username"] == "alice"


def test_bootstrap_servers_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "c.properties", "bootstrap.servers=from-file:9093\n")
    assert kafka_settings.bootstrap_servers(None, "default:9092") == "default:9092"
    in_force(monkeypatch, path)
    assert kafka_settings.bootstrap_servers(None, "default:9092") == "from-file:9093"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-env:9092")
    assert kafka_settings.bootstrap_servers(None, "default:9092") == "from-env:9092"
    assert kafka_settings.bootstrap_servers("given:1", "default:9092") == "given:1"


# -- explain ----------------------------------------------------------------------------------
def test_explain_words_each_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = scram_file(tmp_path)
    in_force(monkeypatch, path)
    explain = kafka_settings.explain
    assert explain(kafka_errors.SaslAuthenticationFailedError("bad")) == (
        f"authentication failed for user alice with SCRAM-SHA-512 (check the login in"
        f" {path.resolve()})"
    )
    topic = kafka_errors.TopicAuthorizationFailedError({"smart_home_stream"})
    assert explain(topic, "write") == (
        "user alice may not write topic smart_home_stream; ask the cluster's admin for an ACL"
    )
    assert explain(kafka_errors.TopicAuthorizationFailedError(), "read", "t1").startswith(
        "user alice may not read topic t1;"
    )
    assert explain(kafka_errors.TopicAuthorizationFailedError(), "read").startswith(
        "user alice may not read its topic;"
    )
    assert explain(kafka_errors.GroupAuthorizationFailedError("batcher")).startswith(
        "user alice may not use consumer group batcher;"
    )
    assert explain(kafka_errors.TransactionalIdAuthorizationFailedError(), "write", "tx-0") == (
        "user alice may not use transactional id tx-0; ask the cluster's admin for an ACL"
    )
    assert explain(kafka_errors.ClusterAuthorizationFailedError(), "use", "create topics") == (
        "user alice may not create topics on this cluster (a cluster ACL is missing)"
    )
    assert explain(kafka_errors.KafkaTimeoutError("Unable to bootstrap")) is None
    assert explain(ValueError("not Kafka's")) is None
    for line in (explain(topic, "write"), explain(kafka_errors.SaslAuthenticationFailedError())):
        assert PASSWORD not in line and "\n" not in line


def test_explain_finds_a_refusal_kafka_python_wraps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_force(monkeypatch, scram_file(tmp_path))
    carried = kafka_errors.KafkaError(
        "Cannot perform send because at least one previous transactional or idempotent"
        " request has failed with errors.",
        kafka_errors.TopicAuthorizationFailedError({"out"}),
    )
    assert kafka_settings.explain(carried, "write").startswith("user alice may not write topic out")
    named = kafka_errors.KafkaError(
        "Unexpected error in InitProducerIdResponse: [Error 31] ClusterAuthorizationFailedError"
    )
    assert isinstance(
        kafka_settings.refusal_in(named), kafka_errors.ClusterAuthorizationFailedError
    )
    refusal = kafka_settings.refused(kafka_errors.GroupAuthorizationFailedError("g"))
    assert isinstance(refusal, UserError)
    assert kafka_settings.refused(kafka_errors.KafkaConnectionError()) is None


def test_explain_without_a_file_names_an_anonymous_client() -> None:
    line = kafka_settings.explain(kafka_errors.TopicAuthorizationFailedError("t"), "read")
    assert line is not None and line.startswith("an anonymous client (no --kafka-config)")


# -- diagnose, against local servers ------------------------------------------------------
@contextlib.contextmanager
def server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on a free 127.0.0.1 port calling ``handle`` per connection; its address."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def read_and_close(conn: socket.socket) -> None:
    """A plaintext Kafka listener given bytes it cannot read: it drops the connection."""
    conn.recv(4096)


def tls(cert: tuple[Path, Path], then: Callable[[socket.socket], None]) -> Callable:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert[0]), str(cert[1]))

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as secured:
            then(secured)

    return handle


def tls_file(tmp_path: Path, ca: Path, protocol: str = "SSL") -> Path:
    login = (
        f'sasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={SCRAM} required username="alice"'
        f' password="{PASSWORD}";\n'
        if protocol.startswith("SASL_")
        else ""
    )
    return write(
        tmp_path / f"{protocol}.properties",
        f"security.protocol={protocol}\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca}\n{login}",
    )


def test_diagnose_an_untrusted_certificate(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    broker_cert: tuple[Path, Path],
    other_ca: Path,
) -> None:
    path = tls_file(tmp_path, other_ca, "SASL_SSL")
    in_force(monkeypatch, path)
    with server(tls(broker_cert, read_and_close)) as address:
        line = kafka_settings.diagnose(address, timeout=3)
    assert line is not None
    assert line.startswith(f"the broker's certificate at {address} is not signed by the CA in")
    assert str(other_ca) in line and str(path.resolve()) in line
    assert PASSWORD not in line


def test_diagnose_a_plaintext_client_at_a_tls_port(broker_cert: tuple[Path, Path]) -> None:
    with server(tls(broker_cert, read_and_close)) as address:
        line = kafka_settings.diagnose(address, timeout=3)
    assert line is not None
    assert line.startswith(
        f"the broker at {address} expects TLS, and this client connects in plaintext;"
    )
    assert "--kafka-config" in line


def test_diagnose_a_tls_client_at_a_plaintext_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker_cert: tuple[Path, Path]
) -> None:
    in_force(monkeypatch, tls_file(tmp_path, broker_cert[0]))
    with server(read_and_close) as address:
        line = kafka_settings.diagnose(address, timeout=3)
    assert line is not None and line.startswith(f"the broker at {address} does not speak TLS")


def test_diagnose_says_nothing_when_tls_is_fine_or_nobody_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker_cert: tuple[Path, Path]
) -> None:
    with server(read_and_close) as address:  # plaintext on both sides
        assert kafka_settings.diagnose(address, timeout=3) is None
    in_force(monkeypatch, tls_file(tmp_path, broker_cert[0]))
    with server(tls(broker_cert, read_and_close)) as address:  # TLS on both sides
        assert kafka_settings.diagnose(address, timeout=3) is None
    in_force(monkeypatch, tls_file(tmp_path, broker_cert[0], "SASL_SSL"))
    with server(tls(broker_cert, read_and_close)) as address:  # TLS, but no Kafka behind it
        assert kafka_settings.diagnose(address, timeout=3) is None
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    assert kafka_settings.diagnose(f"127.0.0.1:{free}", timeout=3) is None


def refusing_kafka(answer_login: bool) -> Callable[[socket.socket], None]:
    """A Kafka that accepts the SCRAM-SHA-512 handshake and refuses the login: with
    SASL_AUTHENTICATION_FAILED, or (``answer_login`` False) by closing the connection."""
    from kafka.protocol.sasl import SaslAuthenticateResponse, SaslHandshakeResponse

    def frames(conn: socket.socket) -> Iterator[tuple[int, int, int]]:
        while True:
            head = conn.recv(4, socket.MSG_WAITALL)
            if len(head) < 4:
                return
            body = conn.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
            yield struct.unpack(">hhi", body[:8])  # api key, version, correlation id

    def handle(conn: socket.socket) -> None:
        for api_key, version, correlation in frames(conn):
            if api_key == 17:  # SaslHandshake
                answer = SaslHandshakeResponse(
                    version=version, error_code=0, mechanisms=["SCRAM-SHA-512"]
                )
            elif api_key == 36 and answer_login:  # SaslAuthenticate
                answer = SaslAuthenticateResponse(
                    version=version,
                    error_code=58,
                    error_message="Authentication failed: invalid credentials",
                    auth_bytes=b"",
                    session_lifetime_ms=0,
                )
            else:
                return
            answer.with_header(correlation_id=correlation)
            conn.sendall(answer.encode(header=True, framed=True))

    return handle


@pytest.mark.parametrize("answer_login", [True, False], ids=["answered", "closed"])
def test_diagnose_a_refused_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer_login: bool
) -> None:
    path = scram_file(tmp_path, protocol="SASL_PLAINTEXT")
    in_force(monkeypatch, path)
    with server(refusing_kafka(answer_login)) as address:
        line = kafka_settings.diagnose(address, timeout=3)
    assert line == (
        f"authentication failed for user alice with SCRAM-SHA-512 (check the login in"
        f" {path.resolve()})"
    )
