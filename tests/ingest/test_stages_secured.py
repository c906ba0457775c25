"""The stages against a secured broker (SASL_SSL, SCRAM-SHA-512, ACLs), each as its own user
through its properties file, and the one line each refusal gives.

One real secured broker serves the module (``LocalKafka(secure=True)``, as ``make kafka-up
SECURE=1`` runs it). The exactly-once runs over SASL_SSL are the chaos tests'
(tests/devtools/test_chaos.py on 3 brokers, tests/stream/test_stream_chaos.py on 1).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smarthome.config import CONSUMER_GROUP
from smarthome.contracts.batch_files import list_batch_files
from smarthome.contracts.predictions import PREDICTIONS_TOPIC
from smarthome.devtools import kafka_security
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.observe.status import StatusSource

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOPIC = kafka_security.STREAM_TOPIC


@pytest.fixture
def broker(secure_broker: LocalKafka) -> LocalKafka:
    """The module's secured broker (``secure_broker`` in tests/fixtures_kafka.py)."""
    return secure_broker


def stage(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def one_line_error(result: subprocess.CompletedProcess[str], prog: str) -> str:
    """The error line of a run that must have failed with one line and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = last_line(result)
    assert line.startswith(f"{prog}: error: "), result.stderr
    return line[len(f"{prog}: error: ") :]


def topic_records(broker: LocalKafka, topic: str = TOPIC) -> list[bytes]:
    """Every value in ``topic``, read as admin up to the end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **broker.client_settings(),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return []  # not created yet
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "the topic could not be read to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(m.value for m in batch)
        return values
    finally:
        consumer.close()


def copy_with(source: Path, target: Path, pattern: str, replacement: str) -> Path:
    text = source.read_text()
    changed = re.sub(pattern, replacement, text)
    assert changed != text, f"{pattern!r} is not in {source}"
    target.write_text(changed)
    target.chmod(0o600)
    return target


def test_stages_run_each_as_its_own_user_and_the_pipeline_view_sees_them(
    broker: LocalKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(topic_records(broker)) if _topic_exists(broker) else 0
    sent = stage(
        "kafka_producer.py",
        "--kafka-config",
        str(broker.client_properties("producer")),
        "--limit",
        "400",
        "--no-progress",
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip().splitlines()[-1] == "delivered 400, failed 0"

    batches = tmp_path / "batches"
    consumed = stage(
        "kafka_consumer_batch.py",
        "--kafka-config",
        str(broker.client_properties("consumer")),
        "--batch-dir",
        str(batches),
        "--batch-size",
        "100",
        "--idle-timeout",
        "3",
        "--no-progress",
    )
    assert consumed.returncode == 0, consumed.stderr
    rows = sum(len(f.read_text().splitlines()) - 1 for f in list_batch_files(batches))
    assert rows == before + 400  # the group had committed nothing before this run

    # the API's pipeline view, as the viewer user: the group's lag is read, and is 0
    monkeypatch.setenv("KAFKA_CONFIG", str(broker.client_properties("viewer")))
    source = StatusSource(broker.bootstrap_servers, TOPIC, CONSUMER_GROUP, batches, tmp_path)
    deadline = time.monotonic() + 30
    while True:
        kafka = source.status().kafka
        if kafka.reachable or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert kafka.reachable, kafka.error
    assert kafka.total_lag == 0
    password = kafka_security.passwords(broker.secure_dir)["viewer"]
    assert password not in repr(source.status())


def _topic_exists(broker: LocalKafka) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, **broker.client_settings())
    try:
        return TOPIC in admin.list_topics()
    finally:
        admin.close()


def test_a_wrong_password_is_one_line_naming_the_user(broker: LocalKafka, tmp_path: Path) -> None:
    wrong = copy_with(
        broker.client_properties("producer"),
        tmp_path / "wrong.properties",
        r'password="[^"]*"',
        'password="not-the-password"',
    )
    result = stage("kafka_producer.py", "--kafka-config", str(wrong), "--limit", "10")
    assert one_line_error(result, "kafka_producer.py") == (
        f"authentication failed for user producer with SCRAM-SHA-512 (check the login in {wrong})"
    )
    assert "not-the-password" not in result.stdout + result.stderr


def test_missing_acls_are_one_line_naming_the_user_and_what_was_refused(
    broker: LocalKafka,
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, **broker.client_settings())
    try:
        admin.create_topics([NewTopic(PREDICTIONS_TOPIC, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    # the producer's user may write only the input topic
    wrote = stage(
        "kafka_producer.py",
        "--kafka-config",
        str(broker.client_properties("producer")),
        "--topic",
        PREDICTIONS_TOPIC,
        "--limit",
        "10",
    )
    line = one_line_error(wrote, "kafka_producer.py")
    assert line.startswith(f"user producer may not write topic {PREDICTIONS_TOPIC}"), line
    assert topic_records(broker, PREDICTIONS_TOPIC) == []
    # and may not read with the batch consumer's group
    read = stage(
        "kafka_consumer_batch.py",
        "--kafka-config",
        str(broker.client_properties("producer")),
        "--batch-dir",
        str(broker.data_dir.parent / "never"),
        "--idle-timeout",
        "20",
    )
    line = one_line_error(read, "kafka_consumer_batch.py")
    assert line.startswith(f"user producer may not use consumer group {CONSUMER_GROUP}"), line
    assert not list_batch_files(broker.data_dir.parent / "never")


def test_an_untrusted_certificate_and_a_plaintext_client_are_one_line(
    broker: LocalKafka, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(_self_signed_ca_pem())
    untrusting = copy_with(
        broker.client_properties("consumer"),
        tmp_path / "other-ca.properties",
        r"ssl\.truststore\.location=.*",
        f"ssl.truststore.location={other_ca}",
    )
    args = ["--batch-dir", str(tmp_path / "batches"), "--idle-timeout", "20"]
    result = stage("kafka_consumer_batch.py", "--kafka-config", str(untrusting), *args)
    line = one_line_error(result, "kafka_consumer_batch.py")
    assert line.startswith(
        f"the broker's certificate at {broker.bootstrap_servers} is not signed by the CA in"
        f" {other_ca}"
    ), line

    result = stage(
        "kafka_consumer_batch.py", "--bootstrap-servers", broker.bootstrap_servers, *args
    )
    line = one_line_error(result, "kafka_consumer_batch.py")
    assert line.startswith(
        f"the broker at {broker.bootstrap_servers} expects TLS, and this client connects in"
        " plaintext"
    ), line
    assert not list_batch_files(tmp_path / "batches")


def test_a_producer_refused_mid_run_loses_nothing_it_reported_delivered(
    broker: LocalKafka,
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    before = len(topic_records(broker)) if _topic_exists(broker) else 0
    producer = subprocess.Popen(
        [sys.executable, str(ROOT / "kafka_producer.py"), "--no-progress"]
        + ["--kafka-config", str(broker.client_properties("producer"))]
        + ["--rate", "300", "--limit", "5000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, **broker.client_settings())
    try:
        deadline = time.monotonic() + 60
        while len(topic_records(broker)) < before + 300:  # well under way
            assert producer.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        admin.delete_acls(
            [
                ACLFilter(
                    principal="User:producer",
                    host="*",
                    operation=ACLOperation.WRITE,
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePatternFilter(
                        ResourceType.TOPIC, TOPIC, ACLResourcePatternType.LITERAL
                    ),
                )
            ]
        )
        out, err = producer.communicate(timeout=120)
    finally:
        producer.kill()
        kafka_security.apply_acls(broker.bootstrap_servers, broker.secure_dir)  # grant it back
        admin.close()
    # the producer's own summary of records not acknowledged, as for brokers that went away
    assert producer.returncode != 0 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: \d+ record\(s\) not written: user producer may not write topic {TOPIC};.*", line
    ), line
    delivered, failed = map(int, re.findall(r"delivered (\d+), failed (\d+)", out)[-1])
    assert 300 <= delivered < 5000 and failed > 0
    # every record it reported delivered is in the topic, once the right user reads it
    assert len(topic_records(broker)) - before >= delivered


def _self_signed_ca_pem() -> bytes:
    """A CA that signed nothing of the broker's."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_the_live_view_reads_what_the_scorer_user_committed_as_the_viewer(
    broker: LocalKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kafka import KafkaProducer

    from smarthome.contracts.predictions import ALERTS_TOPIC
    from smarthome.observe.live import LiveSource
    from tests.helpers.predictions import alert, prediction

    # the scorer's user writes its outputs in a transaction of its own id prefix
    made = prediction(offset=7, user_id=4242)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        transactional_id="smart-home-scorer-live-test",
        **kafka_security.client_settings(broker.secure_dir, "scorer"),
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(PREDICTIONS_TOPIC, key=b"4242", value=made.model_dump_json().encode())
        producer.send(ALERTS_TOPIC, key=b"4242", value=alert(made).model_dump_json().encode())
        producer.commit_transaction()
    finally:
        producer.close()

    monkeypatch.setenv("KAFKA_CONFIG", str(broker.client_properties("viewer")))
    view = LiveSource(broker.bootstrap_servers).view()
    assert view.reachable, view.reason
    assert [p.user_id for p in view.predictions] == [4242]
    assert [a.prediction.user_id for a in view.alerts] == [4242]
