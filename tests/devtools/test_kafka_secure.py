"""A secured local Kafka (``make kafka-up SECURE=1``): TLS, SCRAM logins and ACLs.

One real secured broker serves the module; the ACLs are tested both ways (each principal
does its stage's work, and is refused what another stage does). Clients are kafka-python ones
with keyword arguments. A secured three-node cluster runs the 3-broker chaos test
(tests/devtools/test_chaos.py) and the secured demo (tests/devtools/test_demo.py).
"""

from __future__ import annotations

import contextlib
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from smarthome.config import CONSUMER_GROUP, SCORER_GROUP
from smarthome.contracts.predictions import PREDICTIONS_TOPIC
from smarthome.devtools import kafka_security
from smarthome.devtools.kafka_cluster import LocalKafkaCluster
from smarthome.devtools.kafka_security import PRINCIPALS, STREAM_TOPIC, client_settings
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: short enough that a refused client fails the test quickly instead of hanging it
FAST = {"request_timeout_ms": 5000, "bootstrap_timeout_ms": 5000}


def login(broker: LocalKafka | LocalKafkaCluster, principal: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers.split(","),
        **client_settings(broker.secure_dir, principal),
    }


def create_topic(broker: LocalKafka | LocalKafkaCluster, principal: str, name: str) -> None:
    """Create ``name`` (broker defaults) as ``principal`` unless it exists; wait for a leader."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**login(broker, principal), request_timeout_ms=30_000)
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=-1)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parts = admin.describe_topics([name])[0].get("partitions", [])
            if parts and all(p["leader_id"] >= 0 for p in parts):
                return
            time.sleep(0.2)
        raise TimeoutError(f"topic {name} has no leader after 30 s")
    finally:
        admin.close()


def produce(broker: LocalKafka | LocalKafkaCluster, principal: str, topic: str, n: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        **login(broker, principal), acks="all", enable_idempotence=True, max_block_ms=10_000
    )
    try:
        for i in range(n):
            producer.send(topic, key=str(i).encode(), value=f"record {i}".encode()).get(30)
    finally:
        producer.close(timeout=10)


def consume(
    broker: LocalKafka | LocalKafkaCluster, principal: str, group: str, want: int
) -> list[bytes]:
    """Read ``want`` records of the stream topic in ``group`` (read_committed) and commit."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        STREAM_TOPIC,
        **login(broker, principal),
        group_id=group,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        while len(values) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                values += [r.value for r in records]
        consumer.commit()
    finally:
        consumer.close()
    return values


# -- the material and the files ------------------------------------------------------------
def test_files_are_private_and_no_password_leaks(secure_broker: LocalKafka) -> None:
    import psutil

    secure = secure_broker.secure_dir
    passwords = kafka_security.passwords(secure)
    assert set(passwords) == {*PRINCIPALS, "broker"}
    private = [secure / "broker.pem", secure / "scram.json", secure_broker.properties]
    private += [secure_broker.client_properties(p) for p in PRINCIPALS]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(secure.stat().st_mode) == 0o700
    assert not list(secure.glob("java-args-*"))  # the format's argument file is gone

    text = secure_broker.client_properties("producer").read_text()
    assert f"bootstrap.servers={secure_broker.bootstrap_servers}\n" in text
    assert "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n" in text
    assert f'username="producer" password="{passwords["producer"]}";' in text
    assert f"ssl.truststore.type=PEM\nssl.truststore.location={secure / 'ca.pem'}\n" in text
    assert secure_broker.client_properties("producer").parent == secure  # a private broker

    cmdline = " ".join(psutil.Process(secure_broker.pid).cmdline())
    log = secure_broker.log_file.read_text()
    for password in passwords.values():
        assert password not in cmdline and password not in log


def test_cli_status_says_secured_and_refuses_the_other_kind(
    secure_broker: LocalKafka, tmp_path: Path
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smarthome.devtools.kafka", *args],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip

    flags = ["--port", str(secure_broker.port), "--data-dir", str(secure_broker.data_dir)]
    flags += ["--controller-port", str(secure_broker.controller_port)]
    status = cli("status", *flags)
    assert status.returncode == 0, status.stderr
    assert "is running" in status.stdout and "secured: SASL_SSL" in status.stdout
    assert f"{secure_broker.secure_dir}/<principal>.properties" in status.stdout
    for password in kafka_security.passwords(secure_broker.secure_dir).values():
        assert password not in status.stdout + status.stderr

    plain = cli("up", *flags)  # the secured data dir, without --secure
    assert plain.returncode != 0
    assert "holds a secured Kafka" in plain.stderr and len(plain.stderr.splitlines()) == 1

    formatted_plain = tmp_path / "plain"  # what a plaintext broker's format leaves
    (formatted_plain / "kraft-logs").mkdir(parents=True)
    (formatted_plain / "kraft-logs" / "meta.properties").write_text("node.id=1\n")
    port = free_port()
    up = cli("up", "--secure", "--port", str(port), "--data-dir", str(formatted_plain))
    assert up.returncode != 0
    assert "holds a plaintext Kafka" in up.stderr and "make kafka-down" in up.stderr
    assert len(up.stderr.splitlines()) == 1


# -- the ACLs, both ways ----------------------------------------------------------------------
def test_acls_are_applied_once_however_often(secure_broker: LocalKafka) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    count = kafka_security.apply_acls(secure_broker.bootstrap_servers, secure_broker.secure_dir)
    assert count == len(kafka_security.acl_bindings())
    admin = KafkaAdminClient(**login(secure_broker, "admin"))
    try:
        everything = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        acls, _ = admin.describe_acls(everything)
    finally:
        admin.close()
    assert len(acls) == count  # a restart's second application added none


def test_producer_writes_and_consumer_reads_in_its_group(secure_broker: LocalKafka) -> None:
    create_topic(secure_broker, "producer", STREAM_TOPIC)  # the producer creates it if missing
    produce(secure_broker, "producer", STREAM_TOPIC, 5)
    values = consume(secure_broker, "consumer", CONSUMER_GROUP, 5)
    assert sorted(values) == [f"record {i}".encode() for i in range(5)]


def test_each_principal_is_refused_what_it_does_not_do(secure_broker: LocalKafka) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import (
        GroupAuthorizationFailedError,
        KafkaError,
        TopicAuthorizationFailedError,
    )

    create_topic(secure_broker, "producer", STREAM_TOPIC)
    create_topic(secure_broker, "scorer", PREDICTIONS_TOPIC)

    def refused_write(principal: str, topic: str) -> None:
        """A write the ACLs refuse: the topic (TopicAuthorizationFailed), or already the
        idempotent producer's id, which needs WRITE on some topic (ClusterAuthorizationFailed)."""
        producer = KafkaProducer(
            **login(secure_broker, principal), enable_idempotence=True, max_block_ms=5000
        )
        try:
            with pytest.raises(KafkaError) as refused:
                producer.send(topic, b"not allowed").get(10)
            assert "AuthorizationFailed" in f"{type(refused.value).__name__}: {refused.value}"
        finally:
            producer.close(timeout=5)

    refused_write("producer", PREDICTIONS_TOPIC)
    refused_write("consumer", STREAM_TOPIC)

    # the producer reads nothing, even assigned and in no group
    reader = KafkaConsumer(**login(secure_broker, "producer"), **FAST)
    try:
        reader.assign([TopicPartition(STREAM_TOPIC, 0)])
        reader.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                reader.poll(timeout_ms=500)
    finally:
        reader.close()

    # the batch consumer may not join (or commit in) the scorer's group
    thief = KafkaConsumer(
        STREAM_TOPIC, **login(secure_broker, "consumer"), group_id=SCORER_GROUP, **FAST
    )
    try:
        with pytest.raises((GroupAuthorizationFailedError, KafkaError)) as refused:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                thief.poll(timeout_ms=500)
        assert isinstance(refused.value, GroupAuthorizationFailedError), refused.value
    finally:
        thief.close(autocommit=False)


def test_scorer_commits_a_transaction_within_its_prefix_only(secure_broker: LocalKafka) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import TransactionalIdAuthorizationFailedError
    from kafka.structs import OffsetAndMetadata

    create_topic(secure_broker, "producer", STREAM_TOPIC)
    produce(secure_broker, "producer", STREAM_TOPIC, 2)
    create_topic(secure_broker, "scorer", PREDICTIONS_TOPIC)  # the scorer creates its outputs

    consumer = KafkaConsumer(
        STREAM_TOPIC,
        **login(secure_broker, "scorer"),
        group_id=SCORER_GROUP,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = KafkaProducer(
        **login(secure_broker, "scorer"), transactional_id=f"{SCORER_GROUP}-test-0"
    )
    try:
        records = []
        deadline = time.monotonic() + 60
        while len(records) < 2 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records += batch
        assert len(records) >= 2
        producer.init_transactions()
        producer.begin_transaction()
        for record in records:
            producer.send(PREDICTIONS_TOPIC, key=record.key, value=b'{"scored": true}')
        last = records[-1]
        offsets = {
            TopicPartition(last.topic, last.partition): OffsetAndMetadata(last.offset + 1, "", -1)
        }
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
    finally:
        producer.close(timeout=10)
        consumer.close(autocommit=False)

    # the viewer sees the committed predictions (no group) and the scorer group's offset
    viewer = KafkaConsumer(**login(secure_broker, "viewer"), isolation_level="read_committed")
    try:
        tp = TopicPartition(PREDICTIONS_TOPIC, 0)
        viewer.assign([tp])
        viewer.seek_to_beginning(tp)
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < len(records) and time.monotonic() < deadline:
            for batch in viewer.poll(timeout_ms=1000).values():
                seen += batch
        assert len(seen) == len(records)
    finally:
        viewer.close()
    admin = KafkaAdminClient(**login(secure_broker, "viewer"))  # as the pipeline view asks
    try:
        committed = admin.list_group_offsets(SCORER_GROUP)[SCORER_GROUP]
        assert SCORER_GROUP in admin.describe_groups([SCORER_GROUP])
    finally:
        admin.close()
    assert committed[TopicPartition(last.topic, last.partition)].offset == last.offset + 1

    outsider = KafkaProducer(**login(secure_broker, "scorer"), transactional_id="other-app-0")
    try:
        with pytest.raises(TransactionalIdAuthorizationFailedError):
            outsider.init_transactions()
    finally:
        outsider.close(timeout=5)


def test_plaintext_clients_and_wrong_passwords_get_nothing(secure_broker: LocalKafka) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    attempts = {
        "plaintext": {"bootstrap_servers": secure_broker.bootstrap_servers},
        "wrong password": {
            **login(secure_broker, "producer"),
            "sasl_plain_password": "not-the-password",
        },
    }
    for what, settings in attempts.items():
        started = time.monotonic()
        with pytest.raises(KafkaError):  # kafka-python: "Unable to bootstrap", in 2 s
            KafkaAdminClient(**settings, request_timeout_ms=2000, bootstrap_timeout_ms=2000)
        assert time.monotonic() - started < 15, f"a {what} client hung"
    # the client only sees a closed connection; the broker says why
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in (
        secure_broker.log_file.read_text()
    )
