"""Stream-scorer outputs written the way the scorer writes them: typed messages, committed (or
aborted) in a Kafka transaction, for tests of what reads them (``GET /live``, the Live tab)."""

from __future__ import annotations

import time
import uuid

from smarthome.contracts.predictions import Alert, Prediction


def prediction(offset: int, user_id: int, *, age_ms: int = 0, latency_ms: int = 40) -> Prediction:
    """A prediction of input ``offset`` of ``smart_home_stream``, scored ``age_ms`` ago."""
    scored = int(time.time() * 1000) - age_ms
    return Prediction(
        source_topic="smart_home_stream",
        source_partition=0,
        source_offset=offset,
        user_id=user_id,
        device_type="Camera",
        predicted_efficiency_class=0,
        label="Not efficient",
        probability_of_predicted_class=0.97,
        predicted_malfunctions=3.5,
        device_segment_id=1,
        model_set="20250101T000000Z_set0001",
        event_time_ms=scored - latency_ms,
        scored_time_ms=scored,
    )


def alert(of: Prediction) -> Alert:
    return Alert(
        prediction=of,
        reasons=[f"predicted not efficient with probability {of.probability_of_predicted_class}"],
    )


def send_in_transaction(
    bootstrap: str,
    messages: list[tuple[str, Prediction | Alert | bytes]],
    *,
    commit: bool = True,
) -> None:
    """Send ``(topic, message)`` pairs in one transaction, committed or aborted."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"test-{uuid.uuid4().hex[:8]}"
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for topic, message in messages:
            value = message if isinstance(message, bytes) else message.model_dump_json().encode()
            key = None
            if isinstance(message, Prediction):
                key = str(message.user_id).encode()
            elif isinstance(message, Alert):
                key = str(message.prediction.user_id).encode()
            producer.send(topic, key=key, value=value)
        producer.flush()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    finally:
        producer.close()
