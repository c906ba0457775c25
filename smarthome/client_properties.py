"""Kafka client properties: the ``client.properties`` file every program takes (--kafka-config).

The format is Kafka's own (``--command-config``, ``--producer.config``) and the one every
managed Kafka's "connect a client" page gives: Java properties with Kafka's key names. One
file holds one principal's connection: where the brokers are, how to encrypt, how to log in.
``make kafka-up SECURE=1`` writes one per principal under ``.run/kafka-secure/``.

Relative paths in it (``ssl.truststore.location`` and the like) are read next to the file.

Keys understood (anything else is an error naming the key, never ignored):

- ``bootstrap.servers``: used when neither --bootstrap-servers nor KAFKA_BOOTSTRAP_SERVERS is
  given;
- ``security.protocol``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL;
- ``sasl.mechanism``: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; the login either as Java's
  ``sasl.jaas.config`` (``...LoginModule required username="u" password="p";``) or as
  librdkafka's ``sasl.username``/``sasl.password``;
- the CA that signs the brokers' certificates: ``ssl.truststore.location`` with
  ``ssl.truststore.type`` PEM or PKCS12 (and ``ssl.truststore.password``), or librdkafka's
  ``ssl.ca.location`` (PEM); without one, the system's CAs (a managed Kafka's public
  certificates);
- ``ssl.endpoint.identification.algorithm``: ``https`` (default: the certificate must name the
  host) or empty (it need not);
- a client certificate (mutual TLS): ``ssl.keystore.type=PEM`` with ``ssl.keystore.location``
  (key and chain in one file), or librdkafka's ``ssl.certificate.location`` and
  ``ssl.key.location``;
- ``client.dns.lookup`` (every address of a name is tried: kafka-python always does) and
  ``acks`` (only ``all``/``-1``: the stages' guarantees rest on it), which managed Kafkas'
  files carry.

Passwords are kept as ``SecretStr``: a ``ClientProperties`` printed or logged shows ``**********``.
``java_properties`` gives the same connection back in Java's keys, for the JVM clients (Spark's
Kafka source and sink, Kafka's own tools).
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

import javaproperties
from pydantic import BaseModel, ConfigDict, SecretStr

from smarthome.errors import UserError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Java's login module of each mechanism, as ``sasl.jaas.config`` names it
LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
KNOWN_KEYS = (
    "bootstrap.servers",
    "security.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.truststore.password",
    "ssl.ca.location",
    "ssl.endpoint.identification.algorithm",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.key.password",
    "ssl.certificate.location",
    "ssl.key.location",
    "client.dns.lookup",
    "acks",
)
#: keys a stage sets itself, and why the file may not change them
SET_BY_THE_STAGES = {
    "enable.idempotence": "the producers are always idempotent",
    "isolation.level": "the consumers always read committed records only",
    "enable.auto.commit": "the consumers commit offsets themselves, with their output",
    "transactional.id": "the stream scorer names its own transactions",
    "group.id": "each stage has its own group (--group)",
}
_JAAS = re.compile(r"^\s*(?P<module>[\w.$]+)\s+required\b(?P<options>.*?);?\s*$", re.DOTALL)
_JAAS_OPTION = re.compile(r"""(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(\S+))""")
#: what a backslash escape in a quoted JAAS value stands for (Java's StreamTokenizer); any
#: other escaped character stands for itself (``\"`` is ``"``, ``\\`` is ``\``)
_JAAS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "a": "\a", "v": "\v"}


class ClientProperties(BaseModel):
    """One principal's connection to a Kafka cluster, read from a properties file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Path
    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    username: str | None = None
    password: SecretStr | None = None
    #: PEM file of the CA(s) to trust; PKCS12 truststores are converted when read
    ca_file: Path | None = None
    ca_pem: str | None = None
    check_hostname: bool = True
    certificate_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def describe(self) -> str:
        """Who connects and how, for a log line: no secret in it."""
        who = f" as {self.username} ({self.sasl_mechanism})" if self.uses_sasl else ""
        return f"{self.security_protocol}{who} (from {self.source})"

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the CA(s) of the file (or the system's), hostname checks."""
        try:
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file and not self.ca_pem else None,
                cadata=self.ca_pem,
            )
        except (OSError, ssl.SSLError) as exc:
            where = self.ca_file or "the system"
            raise UserError(f"cannot read the CA certificates of {where}: {exc}") from None
        context.check_hostname = self.check_hostname
        if self.certificate_file:
            try:
                context.load_cert_chain(
                    str(self.certificate_file),
                    str(self.key_file) if self.key_file else None,
                    self.key_password.get_secret_value() if self.key_password else None,
                )
            except (OSError, ssl.SSLError) as exc:
                raise UserError(
                    f"cannot read the client certificate {self.certificate_file}: {exc}"
                ) from None
        return context

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and
        KafkaAdminClient (all three take the same security settings)."""
        settings: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            settings["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            settings["sasl_mechanism"] = self.sasl_mechanism
            settings["sasl_plain_username"] = self.username
            settings["sasl_plain_password"] = (
                self.password.get_secret_value() if self.password else None
            )
        return settings

    def java_properties(self) -> dict[str, str]:
        """The same connection in Java client properties (Spark's ``kafka.``-prefixed options,
        Kafka's tools): absolute paths, the trusted CAs as PEM, the login as a JAAS line.
        Without ``bootstrap.servers``: the caller's brokers are the ones in force."""
        props = {"security.protocol": self.security_protocol}
        if self.uses_sasl:
            assert self.sasl_mechanism is not None and self.username is not None
            password = self.password.get_secret_value() if self.password else ""
            props["sasl.mechanism"] = self.sasl_mechanism
            props["sasl.jaas.config"] = (
                f"{LOGIN_MODULES[self.sasl_mechanism]} required"
                f" username={_jaas_quoted(self.username)} password={_jaas_quoted(password)};"
            )
        if not self.uses_tls:
            return props
        props["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else ""
        if self.ca_pem:  # a PKCS12 store read here: its certificates, as PEM
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.certificates"] = self.ca_pem
        elif self.ca_file:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(self.ca_file)
        if self.certificate_file:
            props["ssl.keystore.type"] = "PEM"
            if self.key_file:  # Java's PEM keystore takes the key and chain in one place
                props["ssl.keystore.certificate.chain"] = _text(self.certificate_file)
                props["ssl.keystore.key"] = _text(self.key_file)
            else:
                props["ssl.keystore.location"] = str(self.certificate_file)
            if self.key_password:
                props["ssl.key.password"] = self.key_password.get_secret_value()
        return props


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def read_client_properties(path: Path | str) -> ClientProperties:
    """The properties file at ``path``, checked; UserError naming the key or file at fault."""
    path = Path(path).expanduser()
    try:
        with path.open(encoding="utf-8") as f:
            raw = javaproperties.load(f)
    except FileNotFoundError:
        raise UserError(
            f"Kafka client properties file {path} does not exist (--kafka-config / KAFKA_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot read Kafka client properties {path}: {exc}") from None
    return client_properties(raw, path)


def client_properties(raw: dict[str, str], source: Path) -> ClientProperties:
    """Check and convert the key/value pairs of a properties file."""
    at = f"in {source}"
    for key in raw:
        if key in SET_BY_THE_STAGES:
            raise UserError(f"{key} {at}: not allowed here, {SET_BY_THE_STAGES[key]}")
        if key not in KNOWN_KEYS:
            raise UserError(
                f"{key} {at}: unknown key; understood: {', '.join(KNOWN_KEYS)}"
                " (docs/operations.md, Connecting to a managed Kafka)"
            )
    # a password is taken as Java takes it: trailing blanks are part of it
    values = {k: v if k == "sasl.password" else v.strip() for k, v in raw.items()}
    fields: dict[str, Any] = {"source": source.resolve()}

    def choice(key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        value = values.get(key, default)
        if value is not None and value.upper() not in allowed:
            raise UserError(f"{key} {at}: {value!r} is not one of {', '.join(allowed)}")
        return value.upper() if value is not None else None

    if "bootstrap.servers" in values:
        fields["bootstrap_servers"] = values["bootstrap.servers"].replace(" ", "")
    protocol = choice("security.protocol", PROTOCOLS, "PLAINTEXT")
    fields["security_protocol"] = protocol
    acks = values.get("acks", "all")
    if acks not in ("all", "-1"):
        raise UserError(f"acks {at}: {acks!r}; the stages need acks=all (remove the line)")
    if values.get("client.dns.lookup", "use_all_dns_ips") not in (
        "use_all_dns_ips",
        "resolve_canonical_bootstrap_servers_only",
        "default",
    ):
        raise UserError(f"client.dns.lookup {at}: {values['client.dns.lookup']!r} is unknown")

    if protocol.startswith("SASL_"):
        mechanism = choice("sasl.mechanism", MECHANISMS, "PLAIN")
        fields["sasl_mechanism"] = mechanism
        username, password = _login(values, mechanism, at)
        fields["username"], fields["password"] = username, SecretStr(password)
    elif any(k.startswith("sasl.") for k in values):
        key = next(k for k in values if k.startswith("sasl."))
        raise UserError(f"{key} {at}: security.protocol={protocol} does not log in with SASL")

    if protocol in ("SSL", "SASL_SSL"):
        fields.update(_trust(values, source, at))
        algorithm = values.get("ssl.endpoint.identification.algorithm", "https")
        if algorithm.lower() not in ("https", ""):
            raise UserError(
                f"ssl.endpoint.identification.algorithm {at}: {algorithm!r}; use https or empty"
            )
        fields["check_hostname"] = algorithm.lower() == "https"
        fields.update(_client_certificate(values, source, at))
    elif any(k.startswith("ssl.") for k in values):
        key = next(k for k in values if k.startswith("ssl."))
        raise UserError(f"{key} {at}: security.protocol={protocol} does not use TLS")
    return ClientProperties(**fields)


def _login(values: dict[str, str], mechanism: str, at: str) -> tuple[str, str]:
    jaas = values.get("sasl.jaas.config")
    if jaas is not None:
        if "sasl.username" in values or "sasl.password" in values:
            raise UserError(f"sasl.jaas.config {at}: give it or sasl.username/password, not both")
        match = _JAAS.match(jaas)
        if not match:
            raise UserError(
                f'sasl.jaas.config {at}: expected \'<LoginModule> required username="..."'
                ' password="...";\''
            )
        if match["module"] != LOGIN_MODULES[mechanism]:
            raise UserError(
                f"sasl.jaas.config {at}: {match['module']} does not log in with {mechanism};"
                f" use {LOGIN_MODULES[mechanism]}"
            )
        options = {}
        for option in _JAAS_OPTION.finditer(match["options"]):
            double, single, bare = option.group(2, 3, 4)  # None: not that kind of value
            quoted = double if double is not None else single
            options[option[1]] = _unescape(quoted) if quoted is not None else bare
        username, password = options.get("username"), options.get("password")
        missing = "username" if not username else "password" if password is None else None
        if missing:
            raise UserError(f'sasl.jaas.config {at}: no {missing}="..." in it')
        return username, password  # type: ignore[return-value]
    username, password = values.get("sasl.username"), values.get("sasl.password")
    if not username or password is None:
        missing = "sasl.username" if not username else "sasl.password"
        raise UserError(
            f"{missing} {at}: missing; SASL needs a login (sasl.jaas.config, or"
            " sasl.username and sasl.password)"
        )
    return username, password


def _unescape(quoted: str) -> str:
    """A quoted JAAS value as Java reads it (``_JAAS_ESCAPES``)."""
    return re.sub(r"\\(.)", lambda m: _JAAS_ESCAPES.get(m[1], m[1]), quoted, flags=re.DOTALL)


def _jaas_quoted(value: str) -> str:
    """``value`` as a double-quoted JAAS option value (the inverse of ``_unescape``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _file(values: dict[str, str], key: str, source: Path, at: str) -> Path:
    path = Path(values[key]).expanduser()
    if not path.is_absolute():
        path = source.parent / path  # relative to the properties file, like a config include
    if not path.is_file():
        raise UserError(f"{key} {at}: {path} does not exist")
    return path.resolve()


def _trust(values: dict[str, str], source: Path, at: str) -> dict[str, Any]:
    if "ssl.ca.location" in values and "ssl.truststore.location" in values:
        raise UserError(f"ssl.ca.location {at}: give it or ssl.truststore.location, not both")
    if "ssl.ca.location" in values:
        return {"ca_file": _file(values, "ssl.ca.location", source, at)}
    if "ssl.truststore.location" not in values:
        return {}  # the system's CAs: a managed Kafka's publicly signed certificates
    location = _file(values, "ssl.truststore.location", source, at)
    kind = values.get("ssl.truststore.type", "JKS" if location.suffix == ".jks" else "PKCS12")
    kind = kind.upper()
    if kind == "PEM":
        return {"ca_file": location}
    if kind == "PKCS12":
        return {"ca_file": location, "ca_pem": _pkcs12_certificates(values, location, at)}
    raise UserError(
        f"ssl.truststore.type {at}: {kind} cannot be read here; convert it to PEM"
        f" (keytool -exportcert -rfc -keystore {location} -alias <ca> -file ca.pem) and set"
        " ssl.truststore.type=PEM"
    )


def _pkcs12_certificates(values: dict[str, str], location: Path, at: str) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

    password = values.get("ssl.truststore.password")
    try:
        store = pkcs12.load_pkcs12(location.read_bytes(), password.encode() if password else None)
    except ValueError as exc:
        raise UserError(
            f"ssl.truststore.location {at}: cannot open {location} as PKCS12 ({exc});"
            " check ssl.truststore.password and ssl.truststore.type"
        ) from None
    certificates = [c.certificate for c in store.additional_certs]
    if store.cert is not None:
        certificates.append(store.cert.certificate)
    if not certificates:
        raise UserError(f"ssl.truststore.location {at}: {location} holds no certificate")
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certificates)


def _client_certificate(values: dict[str, str], source: Path, at: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "ssl.key.password" in values:
        fields["key_password"] = SecretStr(values["ssl.key.password"])
    if "ssl.keystore.location" in values:
        kind = values.get("ssl.keystore.type", "JKS").upper()
        if kind != "PEM":
            raise UserError(
                f"ssl.keystore.type {at}: {kind} cannot be read here; use a PEM file with the"
                " key and its certificate chain (ssl.keystore.type=PEM)"
            )
        fields["certificate_file"] = _file(values, "ssl.keystore.location", source, at)
    elif "ssl.certificate.location" in values:
        fields["certificate_file"] = _file(values, "ssl.certificate.location", source, at)
        if "ssl.key.location" in values:
            fields["key_file"] = _file(values, "ssl.key.location", source, at)
    elif "ssl.key.location" in values:
        raise UserError(f"ssl.key.location {at}: needs ssl.certificate.location too")
    return fields


def write_client_properties(path: Path, values: dict[str, str]) -> Path:
    """Write a properties file readable only by its owner (it holds a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    with path.open("w", encoding="utf-8") as f:
        javaproperties.dump(values, f, timestamp=False, sort_keys=False)
    return path
