"""Prometheus metrics of the producer and the consumer equal what went through them.

Read as Prometheus reads them: the text format from ``/metrics``, parsed with
``prometheus_client``'s own parser.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from smarthome.devtools.ports import free_port
from smarthome.ingest import producer as kp
from smarthome.observe.metrics import ProducerCollector, serve
from tests.conftest import ROOT
from tests.helpers.metrics import scrape
from tests.helpers.records import dataset_records, message


def test_producer_counters_equal_the_records_sent(kafka_broker: Any, make_topic: Any) -> None:
    topic = make_topic(2)
    messages = [(str(i).encode(), json.dumps({"n": i}).encode()) for i in range(700)]
    counts = kp.Counts()
    port = free_port()
    server = serve(port, ProducerCollector(counts))
    producer = kp.make_producer(kafka_broker.bootstrap_servers)
    try:
        kp.send_all(producer, topic, messages, progress=False, counts=counts)
        got = scrape(port)
    finally:
        kp.close(producer)
        server.shutdown()
    assert got[("smarthome_producer_records_sent_total", ())] == 700
    assert got[("smarthome_producer_records_delivered_total", ())] == 700
    assert got[("smarthome_producer_records_failed_total", ())] == 0


def test_consumer_written_plus_rejected_reach_the_stream_and_lag_drains(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    topic = make_topic(2)
    good = [message(r) for r in dataset_records(dataset_path)[:900]]
    bad = [(b"x", b"not json"), (b"y", b'{"UserID": 1}')] * 50  # 100 rejected
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for key, value in good + bad:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    port = free_port()
    log = tmp_path / "consumer.log"
    with log.open("wb") as out:
        consumer = subprocess.Popen(
            [sys.executable, "kafka_consumer_batch.py", "--bootstrap-servers",
             kafka_broker.bootstrap_servers, "--topic", topic, "--batch-dir",
             str(tmp_path / "b"), "--follow", "--max-batch-age", "0.5", "--batch-size", "200",
             "--metrics-port", str(port), "--no-progress"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        got: dict = {}
        while time.monotonic() < deadline:
            assert consumer.poll() is None, log.read_text()
            try:
                got = scrape(port)
            except requests.RequestException:
                got = {}
            written = got.get(("smarthome_consumer_records_written_total", ()), 0)
            rejected = got.get(("smarthome_consumer_records_rejected_total", ()), 0)
            lags = [v for (name, _), v in got.items() if name == "smarthome_consumer_lag_records"]
            if written + rejected == 1000 and len(lags) == 2 and max(lags) == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"metrics never reached the stream: {got}\n{log.read_text()}")
    finally:
        consumer.terminate()
        consumer.wait(timeout=60)
    assert written == 900 and rejected == 100
    assert got[("smarthome_consumer_consumed_total", ())] == 1000
    assert got[("smarthome_consumer_files_published_total", ())] >= 5
    assert got[("smarthome_consumer_commit_failures_total", ())] == 0
    committed = {
        dict(labels)["partition"]: v
        for (name, labels), v in got.items()
        if name == "smarthome_consumer_committed_offset"
    }
    assert sum(committed.values()) == 1000  # the next offsets of both partitions
