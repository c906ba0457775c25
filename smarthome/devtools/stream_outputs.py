"""What the stream scorer committed, read back as a read_committed consumer would see it.

``topic_values`` reads a whole topic back without a group (``read_committed_values``: up to
its last stable offset, as a read_committed consumer does), and ``Tally`` compares
predictions and dead letters with the inputs they name: every input exactly once, none
missing, none twice. Tests, ``make chaos`` and benchmarks count with it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from smarthome.contracts.predictions import DeadLetter, Prediction
from smarthome.kafka_settings import client_settings


def topic_values(
    bootstrap: str, topic: str, timeout: float = 180.0, isolation_level: str = "read_uncommitted"
) -> list[bytes]:
    """Every message value of ``topic``, all partitions, read without a group to its end."""
    return [value for _, _, value in topic_messages(bootstrap, topic, timeout, isolation_level)]


def topic_messages(
    bootstrap: str, topic: str, timeout: float = 180.0, isolation_level: str = "read_uncommitted"
) -> list[tuple[int, int, bytes]]:
    """Every message of ``topic`` as (partition, offset, value), read without a group to its
    end.

    Reads up to each partition's end offset, however long a broker just restarted takes to
    answer (an idle gap is not the end: a slow machine took over 8 s to serve the first
    fetch after a restart, and the topic read as empty).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
        max_poll_records=5000,
        **client_settings(),
    )
    deadline = time.monotonic() + timeout
    try:
        while not (numbers := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} has no partitions after {timeout:g} s")
            time.sleep(0.5)
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        messages: list[tuple[int, int, bytes]] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic}: not read to its end in {timeout:g} s")
            for records in consumer.poll(timeout_ms=1000).values():
                messages.extend((m.partition, m.offset, m.value) for m in records)
        return messages
    finally:
        consumer.close()


def read_committed_values(bootstrap: str, topic: str, timeout: float = 180.0) -> list[bytes]:
    """Every committed message value of ``topic``, as a read_committed consumer reads it.

    A read_committed consumer's end offset is the last stable offset: a transaction still
    open keeps it (and everything after it) back until it commits or is aborted.
    """
    return topic_values(bootstrap, topic, timeout, isolation_level="read_committed")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset (the next offset to be written)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, **client_settings()
    )
    try:
        partitions = [TopicPartition(topic, n) for n in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


@dataclass
class Tally:
    """Committed outputs against the inputs: one prediction or dead letter per input."""

    inputs: int
    predictions: int
    dead_letters: int
    duplicates: int
    missing: int
    #: predictions per model set name
    by_model_set: dict[str, int]
    #: the inputs (partition, offset) with neither a prediction nor a dead letter
    missing_inputs: frozenset[tuple[int, int]] = frozenset()
    #: the inputs with more than one prediction or dead letter
    duplicate_inputs: frozenset[tuple[int, int]] = frozenset()

    @property
    def exactly_once(self) -> bool:
        return self.duplicates == 0 and self.missing == 0

    def line(self) -> str:
        return (
            f"inputs {self.inputs} | predictions {self.predictions} | dead letters"
            f" {self.dead_letters} | duplicates {self.duplicates} | missing {self.missing}"
        )


def tally(
    input_ends: dict[int, int],
    predictions: list[Prediction],
    dead_letters: list[DeadLetter] = (),  # type: ignore[assignment]
) -> Tally:
    """Count the outputs per input (source partition, offset) against the input topic's
    end offsets: offsets 0..end-1 of each partition are the inputs (a topic never compacted
    nor trimmed, as in tests)."""
    seen = Counter((p.source_partition, p.source_offset) for p in predictions)
    seen.update((d.source_partition, d.source_offset) for d in dead_letters)
    expected = {(part, off) for part, end in input_ends.items() for off in range(end)}
    return Tally(
        inputs=len(expected),
        predictions=len(predictions),
        dead_letters=len(dead_letters),
        duplicates=sum(n - 1 for n in seen.values() if n > 1),
        missing=len(expected - seen.keys()),
        by_model_set=dict(Counter(p.model_set for p in predictions)),
        missing_inputs=frozenset(expected - seen.keys()),
        duplicate_inputs=frozenset(key for key, n in seen.items() if n > 1),
    )


def committed_outputs(
    bootstrap: str, input_topic: str, predictions_topic: str, dead_letter_topic: str
) -> Tally:
    """Read both output topics to their ends and tally what came from ``input_topic``."""
    from smarthome.contracts.predictions import parse_dead_letter, parse_prediction

    predictions = [parse_prediction(v) for v in read_committed_values(bootstrap, predictions_topic)]
    letters = [parse_dead_letter(v) for v in read_committed_values(bootstrap, dead_letter_topic)]
    return tally(
        end_offsets(bootstrap, input_topic),
        [p for p in predictions if p.source_topic == input_topic],
        [d for d in letters if d.source_topic == input_topic],
    )
