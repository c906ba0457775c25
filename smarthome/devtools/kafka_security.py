"""A secured local Kafka, set up the way production runs one: TLS, SCRAM logins and ACLs.

``make kafka-up SECURE=1`` (``--secure``; ``LocalKafka(secure=True)``,
``LocalKafkaCluster(secure=True)``) starts brokers that no client reaches without a
password, and on which each stage's principal may do only what that stage does
(``GRANTS``). The default stays a plaintext broker: tests and the demo need no secrets.

Ports (the same layout as a plaintext broker; node *i* of a cluster adds ``2i``):

- ``port`` (9092): the only listener clients reach, ``SASL_SSL`` with SCRAM-SHA-512 and no
  plaintext listener beside it. The brokers' own traffic (replication, transaction markers)
  uses it too, logged in as the super-user ``broker``.
- ``controller_port`` (9093): the KRaft controller listener, ``SSL`` with
  ``ssl.client.auth=required``. SCRAM cannot guard it (the credentials live in the metadata
  the controllers serve), so the nodes present the broker certificate, whose subject
  ``CN=broker`` ``ssl.principal.mapping.rules`` maps to the same ``User:broker``.

What is made at first start in the secure folder (``<data_dir>/secure``; one for all the
nodes of a cluster), with the ``cryptography`` package (nothing downloaded, no keytool):

- ``ca.pem``: a self-signed CA (EC P-256), every client's and broker's trust anchor. Its
  key is dropped once the broker certificate is signed: nothing else is ever signed.
- ``broker.pem`` (0600): the brokers' PEM keystore, the unencrypted PKCS#8 key and the chain
  (broker certificate, CA); the certificate names IP:127.0.0.1 and DNS:localhost, so
  clients verify the host name, and serves as the nodes' client certificate too.
- ``scram.json`` (0600): a random password per principal (``PRINCIPALS`` and ``broker``).
- ``<principal>.properties`` (0600) for each of ``PRINCIPALS``: Java client properties
  (bootstrap, SASL_SSL, SCRAM-SHA-512, JAAS login, PEM trust store) that Kafka's own tools
  and the stages read. ``make kafka-up SECURE=1`` also copies them to ``CLIENT_CONFIG_DIR``
  (``.run/kafka-secure/<principal>.properties``), the stable place the stages use.

The brokers learn the passwords when their storage is formatted (``StorageTool format
--add-scram``). The format command takes them from a Java argument file (0600, deleted as
soon as the format ends), so no password is ever on a command line, where ``ps`` shows it to
every user. The broker's own password is also in ``server.properties`` (0600): Kafka reads
its inter-broker login from there. Nothing here prints or logs a password.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smarthome.config import CONSUMER_GROUP, DEFAULTS, SCORER_GROUP
from smarthome.contracts.predictions import ALERTS_TOPIC, DEAD_LETTER_TOPIC, PREDICTIONS_TOPIC
from smarthome.devtools.workspace import RUN_DIR
from smarthome.errors import UserError

#: where `make kafka-up SECURE=1` puts each principal's client properties for the stages
CLIENT_CONFIG_DIR = RUN_DIR / "kafka-secure"
#: the client principals, one per kind of stage, each with a properties file
PRINCIPALS = ("admin", "producer", "consumer", "scorer", "viewer")
#: the brokers' own principal (inter-broker SCRAM login, controller certificate)
BROKER = "broker"
SUPER_USERS = (BROKER, "admin")
MECHANISM = "SCRAM-SHA-512"
LISTENER = "SASL_SSL"  # the client (and inter-broker) listener's name and protocol

CA_FILE = "ca.pem"
KEYSTORE_FILE = "broker.pem"
PASSWORDS_FILE = "scram.json"
CERT_DAYS = 3650  # a local broker's certificates never expire under a developer

STREAM_TOPIC = DEFAULTS["KAFKA_TOPIC"]
SCORER_OUTPUTS = (PREDICTIONS_TOPIC, ALERTS_TOPIC, DEAD_LETTER_TOPIC)


@dataclass(frozen=True)
class Grant:
    """ALLOW ``operations`` on one resource to ``User:<principal>`` (from any host)."""

    principal: str
    resource: str  # "topic", "group" or "transactional_id"
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False  # the name is a prefix (PREFIXED pattern), not the whole name


#: Who may do what: each stage's principal gets exactly what that stage does, on the default
#: topic and group names. READ and WRITE imply DESCRIBE in Kafka; it is listed anyway so the
#: table reads as the list of requests a stage makes.
GRANTS: tuple[Grant, ...] = (
    # the producer sends the records and creates the topic if it is missing
    Grant("producer", "topic", STREAM_TOPIC, ("WRITE", "DESCRIBE", "CREATE")),
    # the batch consumer reads them in its group and commits its offsets there
    Grant("consumer", "topic", STREAM_TOPIC, ("READ", "DESCRIBE")),
    Grant("consumer", "group", CONSUMER_GROUP, ("READ", "DESCRIBE")),
    # the stream scorer reads in its group and writes its outputs in transactions whose ids
    # are "<group>-<host>-<slot>"
    Grant("scorer", "topic", STREAM_TOPIC, ("READ", "DESCRIBE")),
    Grant("scorer", "group", SCORER_GROUP, ("READ", "DESCRIBE")),
    *(Grant("scorer", "topic", t, ("WRITE", "DESCRIBE", "CREATE")) for t in SCORER_OUTPUTS),
    Grant("scorer", "transactional_id", f"{SCORER_GROUP}-", ("WRITE", "DESCRIBE"), True),
    # the API's pipeline view (end offsets, both groups' committed offsets and members) and
    # its Live view (reads predictions and alerts assigned, in no group)
    *(Grant("viewer", "topic", t, ("DESCRIBE",)) for t in (STREAM_TOPIC, *SCORER_OUTPUTS)),
    *(Grant("viewer", "topic", t, ("READ",)) for t in (PREDICTIONS_TOPIC, ALERTS_TOPIC)),
    *(Grant("viewer", "group", g, ("DESCRIBE",)) for g in (CONSUMER_GROUP, SCORER_GROUP)),
)


# -- the material ------------------------------------------------------------------------
def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), even if it existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


def ensure_material(secure_dir: Path) -> None:
    """Make the CA, the broker's keystore and the passwords once; later calls keep them."""
    secure_dir.mkdir(parents=True, exist_ok=True)
    secure_dir.chmod(0o700)
    if not (secure_dir / CA_FILE).exists() or not (secure_dir / KEYSTORE_FILE).exists():
        ca_pem, keystore_pem = _certificates()
        write_private(secure_dir / KEYSTORE_FILE, keystore_pem)
        (secure_dir / CA_FILE).write_text(ca_pem)
    if not (secure_dir / PASSWORDS_FILE).exists():
        made = {name: secrets.token_urlsafe(24) for name in (*PRINCIPALS, BROKER)}
        write_private(secure_dir / PASSWORDS_FILE, json.dumps(made, indent=1) + "\n")


def _certificates() -> tuple[str, str]:
    """A new CA certificate, and the broker's key and chain signed by it, as PEM text."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=CERT_DAYS))

    def usage(**allowed: bool) -> x509.KeyUsage:
        flags = ("digital_signature", "content_commitment", "key_encipherment")
        flags += ("data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
        kwargs = {flag: allowed.get(flag, False) for flag in flags}
        return x509.KeyUsage(**kwargs, encipher_only=False, decipher_only=False)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smarthome local Kafka CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    both_ends = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        # the whole subject is CN=broker: ssl.principal.mapping.rules maps it to User:broker
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True, key_agreement=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(both_ends), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem).decode()
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ca_pem, key_pem + cert.public_bytes(pem).decode() + ca_pem


def passwords(secure_dir: Path) -> dict[str, str]:
    """Each principal's password, as made by ``ensure_material``."""
    try:
        return json.loads((secure_dir / PASSWORDS_FILE).read_text())
    except (OSError, ValueError):
        raise UserError(
            f"no Kafka passwords in {secure_dir / PASSWORDS_FILE}; stop Kafka (`make"
            " kafka-down`) and remove its data dir to make new ones"
        ) from None


# -- the brokers' side -------------------------------------------------------------------
def server_listeners(secure_dir: Path, port: int, controller_port: int) -> str:
    """The server.properties lines of a secured node, in place of the plaintext listeners."""
    broker_login = _jaas(BROKER, passwords(secure_dir)[BROKER])
    return f"""\
listeners={LISTENER}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={LISTENER}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name={LISTENER}
listener.security.protocol.map=CONTROLLER:SSL,{LISTENER}:SASL_SSL
sasl.enabled.mechanisms={MECHANISM}
sasl.mechanism.inter.broker.protocol={MECHANISM}
listener.name.{LISTENER.lower()}.{MECHANISM.lower()}.sasl.jaas.config={broker_login}
listener.name.controller.ssl.client.auth=required
ssl.keystore.type=PEM
ssl.keystore.location={secure_dir / KEYSTORE_FILE}
ssl.truststore.type=PEM
ssl.truststore.location={secure_dir / CA_FILE}
ssl.principal.mapping.rules=RULE:^CN=([a-z]+)$/$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users={";".join(f"User:{user}" for user in SUPER_USERS)}
allow.everyone.if.no.acl.found=false
"""


def scram_format_args(secure_dir: Path) -> list[str]:
    """``StorageTool format`` arguments that store every principal's SCRAM credential."""
    args = []
    for name, password in passwords(secure_dir).items():
        args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
    return args


@contextlib.contextmanager
def java_argument_file(secure_dir: Path, args: list[str]) -> Iterator[Path]:
    """A Java ``@argfile`` (0600) holding ``args``, removed on exit: ``java ... @file`` reads
    its main class and arguments from it, so none of them shows on the command line."""
    if any(c in arg for arg in args for c in " \t\n\"'\\#"):
        raise ValueError("an argument file holds plain words only")  # never quoted here
    path = secure_dir / f"java-args-{os.getpid()}"
    write_private(path, "\n".join(args) + "\n")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def hide_passwords(text: str, secure_dir: Path) -> str:
    """``text`` (a tool's output, an error) with every password replaced by ``***``."""
    with contextlib.suppress(UserError):
        for password in passwords(secure_dir).values():
            text = text.replace(password, "***")
    return text


# -- the clients' side -------------------------------------------------------------------
def _jaas(username: str, password: str) -> str:
    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return f'{module} required username="{username}" password="{password}";'


def client_settings(secure_dir: Path, principal: str) -> dict[str, Any]:
    """kafka-python keyword arguments that log in as ``principal`` over SASL_SSL."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": principal,
        "sasl_plain_password": passwords(secure_dir)[principal],
        "ssl_cafile": str(secure_dir / CA_FILE),
        "ssl_check_hostname": True,
    }


def admin_client_settings(secure_dir: Path) -> dict[str, Any]:
    """The kafka-python keyword arguments every devtools client of a secured Kafka takes."""
    return client_settings(secure_dir, "admin")


def client_properties_text(secure_dir: Path, principal: str, bootstrap_servers: str) -> str:
    """A principal's Java client properties (Kafka's tools and our loader read them)."""
    return f"""\
# Written by smarthome/devtools/kafka_security.py: log in to the local Kafka as {principal}.
bootstrap.servers={bootstrap_servers}
security.protocol=SASL_SSL
sasl.mechanism={MECHANISM}
sasl.jaas.config={_jaas(principal, passwords(secure_dir)[principal])}
ssl.truststore.type=PEM
ssl.truststore.location={secure_dir / CA_FILE}
"""


def properties_file(directory: Path, principal: str) -> Path:
    return directory / f"{principal}.properties"


def write_client_properties(
    secure_dir: Path, bootstrap_servers: str, publish_dir: Path | None = None
) -> None:
    """Each principal's properties file in ``secure_dir``, and in ``publish_dir`` if given."""
    for directory in (secure_dir, publish_dir):
        if directory is None:
            continue
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        for principal in PRINCIPALS:
            text = client_properties_text(secure_dir, principal, bootstrap_servers)
            write_private(properties_file(directory, principal), text)


# -- ACLs --------------------------------------------------------------------------------
def acl_bindings() -> list[Any]:
    """``GRANTS`` as kafka-python ``ACL`` objects, one per operation."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = []
    for grant in GRANTS:
        pattern = ResourcePattern(
            ResourceType[grant.resource.upper()],
            grant.name,
            ACLResourcePatternType.PREFIXED if grant.prefixed else ACLResourcePatternType.LITERAL,
        )
        for operation in grant.operations:
            acls.append(
                ACL(
                    principal=f"User:{grant.principal}",
                    host="*",
                    operation=ACLOperation[operation],
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=pattern,
                )
            )
    return acls


def apply_acls(bootstrap_servers: str, secure_dir: Path, timeout: float = 60) -> int:
    """Create every ACL of ``GRANTS`` as admin; the number of ACLs. Kafka keeps ACLs as a set,
    so applying them again (every start) changes nothing."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    acls = acl_bindings()
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers.split(","),
                request_timeout_ms=10_000,
                bootstrap_timeout_ms=5000,
                client_id="smarthome-kafka-acls",
                **admin_client_settings(secure_dir),
            )
            try:
                failed = admin.create_acls(acls)["failed"]
            finally:
                admin.close()
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise UserError(f"could not create the Kafka ACLs: {exc}") from None
            time.sleep(0.5)
            continue
        if failed:
            raise UserError(f"Kafka refused {len(failed)} ACLs: {failed[0]}")
        return len(acls)


def prepare_clients(
    secure_dir: Path, bootstrap_servers: str, publish_dir: Path | None = None
) -> None:
    """Once the brokers answer: the ACLs, then every principal's properties file (so a stage
    that finds its file finds a broker that lets it in)."""
    apply_acls(bootstrap_servers, secure_dir)
    write_client_properties(secure_dir, bootstrap_servers, publish_dir)
