"""The stream scorer's messages (DESIGN §15): a prediction, an alert, a dead letter.

Each is one Kafka message, value = UTF-8 JSON of the class below. A prediction and an alert
are keyed by ``UserID`` as a string (like the record they come from, so one device's
messages stay in order on one partition); a dead letter keeps the key of the message it
holds. Every message names the input it comes from (``source_topic``/``source_partition``/
``source_offset``): a reader finds exactly one prediction or dead letter per input message.

The scorer builds these values as plain dicts in its hot path and a test reads them back
through these classes; readers (the UI's Live tab, tests, benchmarks) parse with
:func:`parse_prediction`, :func:`parse_alert` and :func:`parse_dead_letter`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from smarthome.contracts.artefact import STRICT, ContractError, describe
from smarthome.contracts.records import DEVICE_TYPES

#: the topics the scorer writes, by default (``kafka_stream_predict.py`` flags)
PREDICTIONS_TOPIC = "smart_home_predictions"
ALERTS_TOPIC = "smart_home_alerts"
DEAD_LETTER_TOPIC = "smart_home_stream_rejected"

#: the words for an efficiency class, as the API answers them
EFFICIENCY_LABELS: dict[int, str] = {0: "Not efficient", 1: "Efficient"}


class Source(BaseModel):
    """Where a message's input record was read: its topic, partition and offset."""

    model_config = STRICT
    source_topic: str = Field(min_length=1)
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)


class Prediction(Source):
    """All three models' answers for one record, and which set gave them."""

    user_id: int = Field(ge=0, description="The record's UserID (also the message key)")
    device_type: Literal[DEVICE_TYPES] = Field(description="The record's DeviceType")  # type: ignore[valid-type]
    predicted_efficiency_class: int = Field(ge=0, le=1, description="1 = efficient")
    label: str = Field(description="'Efficient' or 'Not efficient'")
    probability_of_predicted_class: float = Field(ge=0, le=1)
    predicted_malfunctions: float
    device_segment_id: int = Field(ge=0, description="KMeans cluster id")
    model_set: str = Field(min_length=1, description="Name of the model set that scored it")
    event_time_ms: int = Field(
        ge=0, description="The input message's Kafka timestamp (ms since the Unix epoch, UTC)"
    )
    scored_time_ms: int = Field(ge=0, description="When it was scored (ms since the epoch)")


class Alert(BaseModel):
    """A prediction that crossed an alert threshold, with each reason in words."""

    model_config = STRICT
    prediction: Prediction
    reasons: list[str] = Field(min_length=1)


class DeadLetter(Source):
    """An input message that could not be scored, kept whole with the reason."""

    key: str | None = Field(description="The input message's key as UTF-8, if it had one")
    value: str | None = Field(
        description="The input message's value: as text, base64 if not UTF-8, null if none"
    )
    value_encoding: Literal["utf-8", "base64"] | None
    reason: str = Field(min_length=1, description="What is wrong, one message per bad field")
    rejected_time_ms: int = Field(ge=0)


def _parse(model: type[BaseModel], raw: bytes | str, what: str) -> BaseModel:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(describe(what, exc)) from None


def parse_prediction(raw: bytes | str) -> Prediction:
    """A prediction message's value, or ContractError naming the field."""
    return _parse(Prediction, raw, "prediction message")  # type: ignore[return-value]


def parse_alert(raw: bytes | str) -> Alert:
    """An alert message's value, or ContractError naming the field."""
    return _parse(Alert, raw, "alert message")  # type: ignore[return-value]


def parse_dead_letter(raw: bytes | str) -> DeadLetter:
    """A dead-letter message's value, or ContractError naming the field."""
    return _parse(DeadLetter, raw, "dead-letter message")  # type: ignore[return-value]
