"""The broker stops and restarts in the middle of a producer run: nothing lost or duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import ROOT
from tests.helpers.topics import read_topic

SCRIPT = ROOT / "kafka_producer.py"


@pytest.mark.kafka
@pytest.mark.slow
def test_broker_restart_mid_run_loses_and_duplicates_nothing(restartable_kafka) -> None:
    bootstrap = restartable_kafka.bootstrap_servers
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--no-progress", "--rate", "1500",
         "--bootstrap-servers", bootstrap, "--topic", "restart-run", "--partitions", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    wait_for_records(bootstrap, "restart-run")  # the producer is connected and sending
    assert proc.poll() is None, "the producer finished before the broker stopped"
    restartable_kafka.stop()
    time.sleep(2)  # the producer keeps sending into its buffer while the broker is away
    restartable_kafka.start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == "delivered 5403, failed 0"

    ids = Counter(json.loads(m.value)["UserID"] for m in read_topic(bootstrap, "restart-run", 5403))
    assert sorted(ids) == list(range(1, 5404))  # none lost
    assert max(ids.values()) == 1  # none duplicated (idempotent producer)


def wait_for_records(bootstrap: str, topic: str, timeout: float = 60) -> None:
    """Until ``topic`` holds a record: a busy machine can take seconds to start the producer."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            if sum(ends.values()) > 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"no record reached {topic} within {timeout:g} s")
    finally:
        consumer.close()
