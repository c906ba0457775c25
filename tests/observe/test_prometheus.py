"""A real Prometheus scrapes the pipeline and a counter reads back through its query API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from smarthome.devtools.ports import free_port
from smarthome.devtools.prometheus import LocalPrometheus, binary, write_config
from smarthome.devtools.servers import running_api
from tests.conftest import DEVICE, ROOT, require
from tests.helpers.records import dataset_records, message

pytestmark = pytest.mark.slow


@pytest.fixture
def prometheus_binary() -> None:
    require(binary() is not None, "Debian's prometheus (make test installs it)")


def test_prometheus_scrapes_the_api_and_the_consumer_and_reads_counters_back(
    prometheus_binary: None, kafka_broker: Any, make_topic: Any, dataset_path: Path,
    trained_model_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    from kafka import KafkaProducer

    topic = make_topic(1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for key, value in [message(r) for r in dataset_records(dataset_path)[:250]]:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    consumer_port = free_port()
    log = tmp_path / "consumer.log"
    with log.open("wb") as out:
        consumer = subprocess.Popen(
            [sys.executable, "kafka_consumer_batch.py", "--bootstrap-servers",
             kafka_broker.bootstrap_servers, "--topic", topic, "--batch-dir",
             str(tmp_path / "b"), "--follow", "--max-batch-age", "0.5",
             "--metrics-port", str(consumer_port), "--no-progress"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = running_api(trained_model_dir, tmp_path / "api.log", "--workers", "2")
    api_url = api.__enter__()
    api_port = int(api_url.rsplit(":", 1)[1])
    for _ in range(40):
        requests.post(f"{api_url}/predict_efficiency", json=DEVICE, timeout=10).raise_for_status()
    targets = {"consumer": consumer_port, "api": api_port}
    config = write_config(tmp_path / "prometheus.yml", targets, "1s")
    prometheus = LocalPrometheus(config, free_port(), tmp_path / "tsdb", tmp_path / "prom.log")
    prometheus.start()
    try:
        deadline = time.monotonic() + 90
        value = None
        while time.monotonic() < deadline:
            assert consumer.poll() is None, log.read_text()
            result = prometheus.query('smarthome_consumer_records_written_total{job="consumer"}')
            value = float(result[0]["value"][1]) if result else None
            if value == 250:
                break
            time.sleep(1)
        assert value == 250, (
            f"Prometheus read {value}; {(tmp_path / 'prom.log').read_text()[-500:]}"
        )
        up = prometheus.query('up{job="consumer"}')
        assert up and up[0]["value"][1] == "1"
        deadline = time.monotonic() + 60
        query = 'smarthome_api_requests_total{job="api",endpoint="/predict_efficiency"}'
        while time.monotonic() < deadline:
            result = prometheus.query(query)
            if result and float(result[0]["value"][1]) == 40:
                break
            time.sleep(1)
        assert result and float(result[0]["value"][1]) == 40, result
    finally:
        api.__exit__(None, None, None)
        prometheus.stop()
        consumer.terminate()
        consumer.wait(timeout=60)
