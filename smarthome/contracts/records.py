"""The record schema: one definition that the producer, the consumer and the API validate with.

A record is one row of the dataset (DESIGN §3). Validation is strict (a string is not a
number, a bool is not an int), rejects NaN/Infinity and unknown keys, and reports one clear
message per bad field, e.g. ``UsageHoursPerDay: must be <= 24 (got 30.5)``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEVICE_TYPES: tuple[str, ...] = (
    "Camera",
    "Lights",
    "Security System",
    "Smart Speaker",
    "Thermostat",
)

#: the dataset's columns, in dataset order (batch files keep this order)
RECORD_COLUMNS: list[str] = [
    "UserID",
    "DeviceType",
    "UsageHoursPerDay",
    "EnergyConsumption",
    "UserPreferences",
    "MalfunctionIncidents",
    "DeviceAgeMonths",
    "SmartHomeEfficiency",
]
NUMERIC_FEATURES: list[str] = [
    "UsageHoursPerDay",
    "EnergyConsumption",
    "UserPreferences",
    "MalfunctionIncidents",
    "DeviceAgeMonths",
]
#: inputs of the efficiency classifier (the segments use NUMERIC_FEATURES only: DESIGN §6)
DEVICE_FEATURES: list[str] = ["DeviceType", *NUMERIC_FEATURES]
#: inputs of the malfunction regressor (everything but its own label)
MALFUNCTION_FEATURES: list[str] = [c for c in DEVICE_FEATURES if c != "MalfunctionIncidents"]
EFFICIENCY_LABEL = "SmartHomeEfficiency"
MALFUNCTION_LABEL = "MalfunctionIncidents"

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class MalfunctionInput(BaseModel):
    """What the malfunction regressor needs about one device."""

    model_config = _STRICT

    DeviceType: Literal[DEVICE_TYPES] = Field(description="Kind of device")  # type: ignore[valid-type]
    UsageHoursPerDay: float = Field(ge=0, le=24, description="Hours of use per day, 0-24")
    EnergyConsumption: float = Field(ge=0, description="Energy use in kWh per day")
    UserPreferences: int = Field(ge=0, le=1, description="User preference flag, 0 or 1")
    DeviceAgeMonths: int = Field(ge=0, description="Age of the device in months")


class DeviceInput(MalfunctionInput):
    """What the efficiency classifier and the segment model need about one device."""

    MalfunctionIncidents: int = Field(ge=0, description="Malfunction incidents reported")


class Record(DeviceInput):
    """One full row of the dataset: a Kafka message value and a batch-file row."""

    UserID: int = Field(ge=0, description="Unique id of the user/device row")
    SmartHomeEfficiency: int = Field(ge=0, le=1, description="1 if the device is efficient")


def _column_type(column: str) -> type:
    return Record.model_fields[column].annotation  # type: ignore[return-value]


def _bounds(column: str) -> tuple[float | None, float | None]:
    low = high = None
    for rule in Record.model_fields[column].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


#: the integer and the float columns, in dataset order (read from :class:`Record`)
INT_COLUMNS: list[str] = [c for c in RECORD_COLUMNS if _column_type(c) is int]
FLOAT_COLUMNS: list[str] = [c for c in RECORD_COLUMNS if _column_type(c) is float]
#: inclusive (low, high) range of every numeric column; None = unbounded (from ``Field``)
RANGES: dict[str, tuple[float | None, float | None]] = {
    c: _bounds(c) for c in RECORD_COLUMNS if c in INT_COLUMNS or c in FLOAT_COLUMNS
}


class RecordError(ValueError):
    """A record failed validation; ``details`` holds one message per bad field."""

    def __init__(self, details: list[str]):
        self.details = details
        super().__init__("; ".join(details))


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(p) for p in error.get("loc", ())) or "record"
    kind = error["type"]
    if kind == "missing":
        return f"{field}: missing; it is required"
    if kind == "extra_forbidden":
        return f"{field}: unknown field (expected only: {', '.join(RECORD_COLUMNS)})"
    if kind == "json_invalid":
        return f"record: not valid JSON ({error['msg']})"
    message = error["msg"]
    for prefix in ("Input should be ", "Value error, "):
        if message.startswith(prefix):
            message = "must be " + message[len(prefix) :]
    got = error.get("input")
    return f"{field}: {message} (got {got!r})"


def _in_column_order(fields: dict[str, Any]) -> dict[str, Any]:
    return {c: fields[c] for c in RECORD_COLUMNS if c in fields}


def describe_errors(exc: ValidationError) -> list[str]:
    """One readable message per bad field of a pydantic ValidationError."""
    return [_describe(e) for e in exc.errors(include_url=False)]


def validate_record(value: Any, model: type[BaseModel] = Record) -> dict[str, Any]:
    """A validated record as a dict in column order, or RecordError naming each bad field."""
    if not isinstance(value, dict):
        raise RecordError([f"record: must be a JSON object (got {type(value).__name__})"])
    try:
        return _in_column_order(model.model_validate(value).model_dump())
    except ValidationError as exc:
        raise RecordError(describe_errors(exc)) from None


def parse_record_json(raw: bytes | str) -> dict[str, Any]:
    """Parse and validate one Kafka message value (UTF-8 JSON object)."""
    try:
        return _in_column_order(Record.model_validate_json(raw).model_dump())
    except ValidationError as exc:
        raise RecordError(describe_errors(exc)) from None
    except UnicodeDecodeError as exc:
        raise RecordError([f"record: not valid UTF-8 ({exc.reason})"]) from None


def parse_record_message(raw: bytes | None) -> dict[str, Any]:
    """A Kafka message value as a validated record; RecordError says why it is not one.

    Like :func:`parse_record_json`, and a null value or bytes that are not UTF-8 are named
    as such rather than as invalid JSON.
    """
    if raw is None:
        raise RecordError(["record: empty message (null value)"])
    try:
        return parse_record_json(raw)
    except RecordError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(
                [f"record: not valid UTF-8 ({exc.reason} at byte {exc.start})"]
            ) from None
        raise


def record_row(record: dict[str, Any]) -> list[Any]:
    """The record's values in dataset column order."""
    return [record[c] for c in RECORD_COLUMNS]
