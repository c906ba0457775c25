"""The dataset's records as typed dicts and as Kafka messages (DESIGN §3), and sending them."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from smarthome.contracts.records import RECORD_COLUMNS

_TYPES = {c: int for c in RECORD_COLUMNS} | {
    "DeviceType": str,
    "UsageHoursPerDay": float,
    "EnergyConsumption": float,
}


def dataset_records(path: Path) -> list[dict[str, Any]]:
    """The dataset as typed records; floats parsed from their exact text."""
    with path.open(newline="") as fh:
        return [{k: _TYPES[k](v) for k, v in row.items()} for row in csv.DictReader(fh)]


def dataset_frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def message(record: dict[str, Any]) -> tuple[bytes, bytes]:
    """A record as DESIGN §3's Kafka message: key UserID as text, value UTF-8 JSON."""
    return str(record["UserID"]).encode(), json.dumps(record).encode()


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    rate: float = 0,
) -> list[tuple[int, int]]:
    """Send messages in order (idempotent, acks=all), every future checked; (partition, offset)s."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        futures = []
        started = time.monotonic()
        for i, (key, value) in enumerate(messages):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            futures.append(producer.send(topic, key=key, value=value))
        producer.flush(60)
        return [(m.partition, m.offset) for m in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()


def produce_in_background(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], rate: float
) -> threading.Thread:
    thread = threading.Thread(target=produce, args=(bootstrap, topic, messages, rate), daemon=True)
    thread.start()
    return thread
