"""Fixtures for the kafka stage: real local Kafka brokers on free ports in private temp dirs.

- ``kafka_broker`` (session): one shared broker, started once, stopped at the end.
- ``make_topic`` (function): ``make_topic(partitions=1) -> name`` of a fresh, unique topic.
- ``restartable_kafka`` (function): a private broker the test may ``.stop()``/``.start()``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port
from tests.conftest import require


def _new_broker(base: Path, secure: bool = False) -> LocalKafka:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for a local Kafka broker")
    return LocalKafka(
        base / "kafka",
        port=free_port(),
        controller_port=free_port(),
        die_with_parent=True,
        secure=secure,
    )


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """One real broker for the whole session; ``.bootstrap_servers`` is "127.0.0.1:<port>"."""
    broker = _new_broker(tmp_path_factory.mktemp("kafka-session"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A secured broker (``make kafka-up SECURE=1``: SASL_SSL, SCRAM, ACLs) for one module."""
    broker = _new_broker(tmp_path_factory.mktemp("kafka-secure"), secure=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def create_topic(bootstrap_servers: str, name: str, partitions: int = 1) -> None:
    """Create a topic and wait until every partition has a leader."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = admin.describe_topics([name])
            parts = described[0].get("partitions", []) if described else []
            if len(parts) == partitions and all(
                p.get("leader_id", -1) >= 0 and not p.get("error_code") for p in parts
            ):
                return
            time.sleep(0.1)
        raise TimeoutError(f"topic {name} has no leader for every partition after 30 s")
    finally:
        admin.close()


@pytest.fixture
def make_topic(kafka_broker: LocalKafka) -> Callable[..., str]:
    """A factory: ``make_topic(partitions=1)`` creates a uniquely named topic and returns it."""

    def make(partitions: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        create_topic(kafka_broker.bootstrap_servers, name, partitions)
        return name

    return make


@pytest.fixture
def restartable_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A private, started broker the test may stop and start again (same ports, same data)."""
    broker = _new_broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
