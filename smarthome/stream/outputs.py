"""What one poll's messages become: predictions, alerts and dead letters, as Kafka messages.

Every message is parsed through the record contract; the valid ones are scored together,
each model once per poll on all of them (numpy, ``smarthome.scoring``), and each input gives
exactly one prediction or one dead letter, plus an alert when the prediction crosses a
threshold. Values are written in the formats of ``contracts.predictions`` (a test reads them
back through its classes) without building a pydantic object or a dict per message: at
thousands of records a second, that would cost as much as the scoring. A prediction is one
template filled with ``%`` (its strings are a Kafka topic name, a device type, a label and a
set name, none of which needs JSON escaping; its floats are written as ``json`` writes them).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smarthome.contracts.predictions import EFFICIENCY_LABELS
from smarthome.contracts.records import RecordError, parse_record_message
from smarthome.stream.alerts import AlertRules

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
PREDICTION = (
    '{"source_topic":"%s","source_partition":%d,"source_offset":%d,"user_id":%d,'
    '"device_type":"%s","predicted_efficiency_class":%d,"label":"%s",'
    '"probability_of_predicted_class":%r,"predicted_malfunctions":%r,'
    '"device_segment_id":%d,"model_set":"%s","event_time_ms":%d,"scored_time_ms":%d}'
)

#: a Kafka message to send: (key, value, the partition its input was read from)
Message = tuple[bytes | None, bytes, int]


@dataclass
class Outputs:
    """The messages one batch of inputs gives, and each input's event time (for latency)."""

    predictions: list[Message] = field(default_factory=list)
    alerts: list[Message] = field(default_factory=list)
    dead_letters: list[Message] = field(default_factory=list)
    event_times_ms: list[int] = field(default_factory=list)


def event_time_ms(message: Any, now_ms: int) -> int:
    """The message's Kafka timestamp: the producer's send time (records carry no time of
    their own); ``now_ms`` for a message without one (-1, pre-0.10 formats)."""
    stamp = message.timestamp
    return stamp if stamp is not None and stamp >= 0 else now_ms


def dead_letter(message: Any, reason: str, now_ms: int) -> Message:
    """The dead-letter message of an input: its coordinates, key, value, and the reason."""
    raw = message.value
    value: str | None = None
    encoding: str | None = None
    if raw is not None:
        try:
            value, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    key = message.key
    letter = {
        "source_topic": message.topic,
        "source_partition": message.partition,
        "source_offset": message.offset,
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "value": value,
        "value_encoding": encoding,
        "reason": reason,
        "rejected_time_ms": now_ms,
    }
    return key, _encode(letter).encode(), message.partition


def score_messages(
    messages: Sequence[Any], model_set: Any, rules: AlertRules, now_ms: int
) -> Outputs:
    """One prediction or dead letter per message (plus alerts), scored by ``model_set``.

    ``messages`` are kafka-python ``ConsumerRecord``s (topic, partition, offset, key, value,
    timestamp); ``model_set`` is a served set (``smarthome.scoring.served``).
    """
    out = Outputs()
    valid: list[Any] = []
    rows: list[dict[str, Any]] = []
    event_times = out.event_times_ms
    for message in messages:
        event_times.append(event_time_ms(message, now_ms))
        try:
            rows.append(parse_record_message(message.value))
        except RecordError as exc:
            out.dead_letters.append(dead_letter(message, str(exc), now_ms))
            continue
        valid.append(message)
    if not rows:
        return out
    efficiency = model_set.predict_efficiency(rows)
    malfunctions = model_set.predict_malfunction(rows)
    segments = model_set.segment(rows)
    name = model_set.name
    isfinite, reasons_of = math.isfinite, rules.reasons
    for message, row, (cls, probability), predicted, segment in zip(
        valid, rows, efficiency, malfunctions, segments, strict=True
    ):
        if not (isfinite(probability) and isfinite(predicted)):
            reason = "record: values too extreme to score (a model's output is not finite)"
            out.dead_letters.append(dead_letter(message, reason, now_ms))
            continue
        user_id = row["UserID"]
        prediction = PREDICTION % (
            message.topic,
            message.partition,
            message.offset,
            user_id,
            row["DeviceType"],
            cls,
            EFFICIENCY_LABELS[cls],
            probability,
            predicted,
            segment,
            name,
            event_time_ms(message, now_ms),
            now_ms,
        )
        key, source = str(user_id).encode(), message.partition
        out.predictions.append((key, prediction.encode(), source))
        reasons = reasons_of(cls, probability, predicted)
        if reasons:
            alert = f'{{"prediction":{prediction},"reasons":{_encode(reasons)}}}'
            out.alerts.append((key, alert.encode(), source))
    return out
