"""Reading a Kafka topic back, every partition from its start."""

from __future__ import annotations

import time
from typing import Any


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    """Every message in the topic (all partitions, from the start), as consumer records."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                messages.extend(batch)
            if all(consumer.position(tp) >= ends[tp] for tp in parts) and len(messages) >= min(
                expected, sum(ends.values())
            ):
                break
        return messages
    finally:
        consumer.close()
