"""Exactly once through crashes: the consumer killed mid-stream, the broker restarted mid-run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka import KafkaConsumer

from smarthome.contracts.batch_files import list_batch_files
from smarthome.devtools.chaos import topic_user_ids
from tests.conftest import ROOT
from tests.fixtures_kafka import create_topic
from tests.helpers.consumer import assert_exactly_once, run_consumer, start_consumer
from tests.helpers.records import dataset_frame, dataset_records, message, produce_in_background

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

#: small batches and a short age so every run publishes several files while records flow
FLAGS = ("--batch-size", "150", "--max-batch-age", "0.5", "--instance-id", "crash-test")


def _wait_for_new_file(batch_dir: Path, before: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while len(list_batch_files(batch_dir)) <= before and proc.poll() is None:
        assert time.monotonic() < deadline, "the consumer published nothing in 60 s"
        time.sleep(0.02)


def test_sigkill_at_five_moments_while_the_producer_streams(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = make_topic(2)
    batch_dir = tmp_path / "batches"
    log = tmp_path / "consumer.log"
    producer = produce_in_background(
        bootstrap, topic, [message(r) for r in dataset_records(dataset_path)], rate=450
    )
    # 1 and 2: the test hooks die exactly between rename and commit, and just before a rename
    for hook in ("SMARTHOME_TEST_CRASH_AFTER_RENAME", "SMARTHOME_TEST_CRASH_BEFORE_RENAME"):
        proc = start_consumer(bootstrap, topic, batch_dir, *FLAGS, log=log, env={hook: "3"})
        assert proc.wait(timeout=120) == 86, log.read_text()
    assert list((batch_dir / ".tmp").iterdir()), "the before-rename crash left its temp file"
    # 3-5: SIGKILL at staggered moments after the consumer has published something
    for delay in (0.0, 0.15, 0.6):
        before = len(list_batch_files(batch_dir))
        proc = start_consumer(bootstrap, topic, batch_dir, *FLAGS, log=log)
        _wait_for_new_file(batch_dir, before, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, log.read_text()
    producer.join(timeout=120)
    assert not producer.is_alive()
    # the final run drains the rest and stops when idle
    run_consumer(bootstrap, topic, batch_dir, *FLAGS, "--idle-timeout", "3", log=log)
    assert_exactly_once(batch_dir, dataset_frame(dataset_path))
    assert not list((batch_dir / "rejected").iterdir())


def _rows_on_disk(batch_dir: Path) -> int:
    return sum(len(pd.read_csv(path)) for path in list_batch_files(batch_dir))


def _wait_until_topic_holds(
    bootstrap: str, topic: str, count: int, producer: subprocess.Popen[bytes]
) -> None:
    """Until the topic's partitions hold ``count`` records (a slow machine starts late)."""
    from kafka import TopicPartition

    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic)]
        deadline = time.monotonic() + 60
        while sum(probe.end_offsets(parts).values()) < count:
            assert producer.poll() is None and time.monotonic() < deadline, "no stream"
            time.sleep(0.05)
    finally:
        probe.close()


def test_broker_restart_mid_producer_run_loses_and_duplicates_nothing(
    restartable_kafka: Any, dataset_path: Path, tmp_path: Path
) -> None:
    broker = restartable_kafka
    topic = "restart-test"
    batch_dir = tmp_path / "batches"
    producer_log = tmp_path / "producer.log"
    create_topic(broker.bootstrap_servers, topic, partitions=2)
    # ordinary producer run, as a user runs it, with a rate so the stop lands mid-stream
    with producer_log.open("wb") as out:
        producer = subprocess.Popen(
            [
                sys.executable,
                "kafka_producer.py",
                "--bootstrap-servers",
                broker.bootstrap_servers,
                "--topic",
                topic,
                "--dataset",
                str(dataset_path),
                "--rate",
                "900",
                "--no-progress",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    consumer = start_consumer(
        broker.bootstrap_servers,
        topic,
        batch_dir,
        "--batch-size",
        "300",
        "--max-batch-age",
        "1",
        "--idle-timeout",
        "120",
        log=tmp_path / "consumer.log",
    )
    _wait_until_topic_holds(broker.bootstrap_servers, topic, 1500, producer)  # mid-stream
    assert producer.poll() is None, producer_log.read_text()
    broker.stop()
    time.sleep(2)
    broker.start()
    assert producer.wait(timeout=240) == 0, producer_log.read_text()
    ids = topic_user_ids(broker.bootstrap_servers, topic)
    assert len(ids) == len(set(ids)) == 5403, "the topic lost or duplicated records"
    # the consumer that lived through the outage catches up by itself
    deadline = time.monotonic() + 120
    while _rows_on_disk(batch_dir) < 5403 and time.monotonic() < deadline:
        assert consumer.poll() is None, (tmp_path / "consumer.log").read_text()
        time.sleep(0.5)
    consumer.send_signal(signal.SIGTERM)  # a clean stop: write what is buffered, commit
    assert consumer.wait(timeout=120) == 0, (tmp_path / "consumer.log").read_text()
    assert_exactly_once(batch_dir, dataset_frame(dataset_path))
