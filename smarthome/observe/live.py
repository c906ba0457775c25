"""The stream scorer's newest predictions and alerts, as a read_committed reader sees them.

``GET /live`` (the API) serves it and the UI's Live tab shows it. A look reads the last
``MAX_LIMIT`` committed messages of each partition of the predictions and alerts topics with a
read_committed consumer that belongs to no group (assign, seek to end - N): it commits nothing
and moves no scorer's partitions. Every message is read through its contract
(``contracts.predictions``); one that does not match is counted, not shown. Kafka down or a
topic not created yet is said in ``reason``, with empty lists, never an error.

Like the pipeline status, Kafka is asked at most once a second (every 5 s while it does not
answer), in a background thread, so only the first request waits for it.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel

from smarthome.contracts.artefact import ContractError
from smarthome.contracts.predictions import (
    ALERTS_TOPIC,
    PREDICTIONS_TOPIC,
    Alert,
    Prediction,
    parse_alert,
    parse_prediction,
)
from smarthome.kafka_settings import client_settings, current, explain, not_connected
from smarthome.observe.background import LatestLook

#: the most predictions (and alerts) one answer lists
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
#: a rate is given only while the newest prediction is this recent: the rate of a stream
#: that stopped an hour ago is not its rate now
RATE_RECENT_SECONDS = 10.0
#: how long one look may read before it answers with what it has
READ_SECONDS = 3.0


class LiveView(BaseModel):
    """The newest predictions and alerts, newest first, with their rate and latency."""

    reachable: bool
    #: why the lists are empty or short: Kafka does not answer, a topic does not exist yet
    reason: str | None = None
    bootstrap_servers: str
    predictions_topic: str
    alerts_topic: str
    predictions: list[Prediction] = []
    alerts: list[Alert] = []
    #: messages read that do not match their contract (left out of the lists)
    unreadable: int = 0
    #: predictions per second among those listed (their scoring times' span); None with
    #: fewer than two, or when the newest is older than RATE_RECENT_SECONDS
    predictions_per_second: float | None = None
    #: record produced (its Kafka timestamp) -> scored, over the predictions listed; the
    #: prediction becomes readable when its transaction commits, up to the scorer's commit
    #: interval later
    latency_ms_p50: float | None = None
    latency_ms_max: float | None = None
    #: seconds since the newest listed prediction was scored
    newest_age_seconds: float | None = None
    checked_at: datetime


@dataclass
class _Look:
    """One read of both topics: up to MAX_LIMIT messages each, oldest first."""

    at: float
    reachable: bool
    reason: str | None = None
    predictions: list[Prediction] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    unreadable: int = 0


@dataclass
class LiveSource:
    """Where the scorer writes; ``view(limit)`` answers from the newest look."""

    bootstrap_servers: str
    predictions_topic: str = PREDICTIONS_TOPIC
    alerts_topic: str = ALERTS_TOPIC

    def __post_init__(self) -> None:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # as in observe.status
        # a look at a Kafka that is down takes seconds: looked at again less often
        self._latest = LatestLook(self.read, lambda look: 1.0 if look.reachable else 5.0)

    def view(self, limit: int = DEFAULT_LIMIT, now: float | None = None) -> LiveView:
        """The newest ``limit`` predictions and alerts (1..MAX_LIMIT), newest first."""
        look = self._newest()
        now = time.time() if now is None else now
        predictions = look.predictions[-limit:][::-1]
        alerts = look.alerts[-limit:][::-1]
        view = LiveView(
            reachable=look.reachable,
            reason=look.reason,
            bootstrap_servers=self.bootstrap_servers,
            predictions_topic=self.predictions_topic,
            alerts_topic=self.alerts_topic,
            predictions=predictions,
            alerts=alerts,
            unreadable=look.unreadable,
            checked_at=datetime.fromtimestamp(look.at, timezone.utc),
        )
        return view.model_copy(update=summary(predictions, now))

    def _newest(self) -> _Look:
        look = self._latest.get()
        if look is None:
            return _Look(time.time(), False, "Kafka did not answer within 15 s")
        return look

    def read(self) -> _Look:
        """Read the last MAX_LIMIT committed messages of each partition of both topics."""
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers.split(","),
                isolation_level="read_committed",
                enable_auto_commit=False,
                allow_auto_create_topics=False,  # a reader must not create the scorer's topics
                request_timeout_ms=3000,
                bootstrap_timeout_ms=2000,
                **client_settings(),  # the --kafka-config file in force
            )
        except Exception as exc:  # kafka-python raises several kinds when nobody answers
            why = not_connected(exc, self.bootstrap_servers, f"no Kafka broker answers: {exc}")
            return _Look(time.time(), False, why)
        missing: list[str] = []
        values: dict[str, list[bytes]] = {self.predictions_topic: [], self.alerts_topic: []}
        try:
            tps = []
            for topic in values:
                numbers = consumer.partitions_for_topic(topic)
                if not numbers:
                    missing.append(topic)
                tps += [TopicPartition(topic, n) for n in sorted(numbers or ())]
            if tps:
                consumer.assign(tps)
                # a read_committed consumer's end offset is the last stable offset: what an
                # open transaction wrote is not read
                ends = consumer.end_offsets(tps, timeout_ms=3000)
                starts = consumer.beginning_offsets(tps, timeout_ms=3000)
                for tp in tps:
                    consumer.seek(tp, max(starts[tp], ends[tp] - MAX_LIMIT))
                read = _read_to(consumer, tps, ends)
                for tp, messages in read.items():
                    values[tp.topic] += messages
        except (KafkaError, OSError) as exc:
            return _Look(time.time(), False, explain(exc, "read") or f"{type(exc).__name__}: {exc}")
        finally:
            consumer.close()
        predictions, bad = _parsed(values[self.predictions_topic], parse_prediction)
        alerts, bad_alerts = _parsed(values[self.alerts_topic], parse_alert)
        predictions.sort(key=lambda p: (p.scored_time_ms, p.source_partition, p.source_offset))
        alerts.sort(key=lambda a: (a.prediction.scored_time_ms, a.prediction.source_offset))
        reason = None
        if missing:
            reason = (
                f"no topic {' nor '.join(missing)} yet: the stream scorer creates it"
                " (python kafka_stream_predict.py)"
            )
            properties = current()
            if properties is not None and properties.uses_sasl:  # a secured cluster hides them
                reason += f", or user {properties.username} may not describe it"
        return _Look(
            time.time(),
            True,
            reason,
            predictions[-MAX_LIMIT:],
            alerts[-MAX_LIMIT:],
            bad + bad_alerts,
        )


def _read_to(consumer, tps: list, ends: dict) -> dict:
    """Poll until every partition's position reaches its end, or READ_SECONDS pass."""
    read: dict = {tp: [] for tp in tps}
    deadline = time.monotonic() + READ_SECONDS
    while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
        for tp, messages in consumer.poll(timeout_ms=200).items():
            read[tp] += [m.value for m in messages if m.offset < ends[tp]]
    return read


def _parsed(values: list[bytes], parse) -> tuple[list, int]:
    """The messages that match their contract, and how many did not."""
    good, bad = [], 0
    for value in values:
        try:
            good.append(parse(value))
        except ContractError:
            bad += 1
    return good, bad


def summary(predictions: list[Prediction], now: float) -> dict:
    """Rate, latency and age of ``predictions`` (newest first) at ``now`` (seconds)."""
    if not predictions:
        return {}
    newest, oldest = predictions[0].scored_time_ms, predictions[-1].scored_time_ms
    latencies = [p.scored_time_ms - p.event_time_ms for p in predictions]
    age = max(0.0, now - newest / 1000)
    rate = None
    if len(predictions) >= 2 and newest > oldest and age <= RATE_RECENT_SECONDS:
        rate = (len(predictions) - 1) / ((newest - oldest) / 1000)
    return {
        "predictions_per_second": rate,
        "latency_ms_p50": float(statistics.median(latencies)),
        "latency_ms_max": float(max(latencies)),
        "newest_age_seconds": age,
    }
