"""Request parsing and validation for the prediction endpoints.

The request models extend the shared record schema (``contracts.records``) only by the record
columns an endpoint accepts and ignores, so a whole dataset row can be posted anywhere
(DESIGN §8). The OpenAPI document is generated from these same classes.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from smarthome.contracts.records import (
    DEVICE_FEATURES,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    MALFUNCTION_FEATURES,
    DeviceInput,
    MalfunctionInput,
    describe_errors,
)

#: largest number of records in one list request
MAX_BATCH = 1000
#: largest request body in bytes (a full batch of dataset rows is about 200 kB)
MAX_BODY_BYTES = 1024 * 1024
#: ints must fit Spark's LongType (and a float64 without overflow)
INT_LIMIT = 2**63
#: floats are bounded by an int that is exact both as a float and in JSON text
NUMBER_LIMIT = 10**15

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class ApiError(Exception):
    """A client mistake: becomes ``{"error": message, "details": [...]}`` with ``status``."""

    def __init__(self, status: int, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []


class _NonFinite:
    """Stands in for a NaN/Infinity token so validation can name the field that held it."""

    def __init__(self, token: str):
        self.token = token

    def __repr__(self) -> str:
        return self.token


#: built once: ``json.loads(..., parse_constant=...)`` builds a decoder on every call
_DECODER = json.JSONDecoder(parse_constant=_NonFinite)


def _ignored(description: str) -> Any:
    return Field(default=None, description=f"{description} (accepted and ignored)")


def _integral_float_to_int(value: Any) -> Any:
    """JSON has one number type: ``36.0`` is the integer 36 (as in JSON Schema), ``36.5`` not."""
    if isinstance(value, float) and value.is_integer() and abs(value) < INT_LIMIT:
        return int(value)
    return value


def _sane_number(value: Any) -> Any:
    """Bound float fields far from float64 overflow (scores stay finite); exact for ints."""
    if type(value) in (int, float) and abs(value) > NUMBER_LIMIT:
        raise ValueError(f"a number at most {NUMBER_LIMIT:.0e}")
    return value


def _fits_int64(value: int | None) -> int | None:
    if value is not None and abs(value) >= INT_LIMIT:
        raise ValueError("less than 2^63")
    return value


def _document_bounds(schema: dict[str, Any]) -> None:
    """Show the int64 / number bounds in the OpenAPI document, so fuzzers and clients know."""
    bounds = {"integer": INT_LIMIT - 1, "number": NUMBER_LIMIT}
    for prop in schema.get("properties", {}).values():
        for option in [prop, *prop.get("anyOf", [])]:
            if option.get("type") in bounds:
                option.setdefault("minimum", -bounds[option["type"]])
                option.setdefault("maximum", bounds[option["type"]])


class _Request(BaseModel):
    """Shared by the request models: JSON integers (36.0 is 36) and the int64/number bounds."""

    model_config = ConfigDict(json_schema_extra=_document_bounds)

    _int_in = field_validator(*INT_COLUMNS, mode="before", check_fields=False)(
        _integral_float_to_int
    )
    _int_out = field_validator(*INT_COLUMNS, check_fields=False)(_fits_int64)
    _float_in = field_validator(*FLOAT_COLUMNS, mode="before", check_fields=False)(_sane_number)


class MalfunctionRequest(MalfunctionInput, _Request):
    """Body of ``POST /predict_malfunction``: the regressor's 5 inputs (other columns ignored)."""

    MalfunctionIncidents: int | None = _ignored("The label this endpoint predicts")
    UserID: int | None = _ignored("Dataset row id")
    SmartHomeEfficiency: int | None = _ignored("Efficiency label of the dataset row")


class DeviceRequest(DeviceInput, _Request):
    """Body of ``POST /predict_efficiency`` and ``/get_device_segment``: all 6 features."""

    UserID: int | None = _ignored("Dataset row id")
    SmartHomeEfficiency: int | None = _ignored("Efficiency label of the dataset row")


#: the columns each request model hands to the scorer
FEATURES: dict[type[BaseModel], list[str]] = {
    DeviceRequest: DEVICE_FEATURES,
    MalfunctionRequest: MALFUNCTION_FEATURES,
}


#: validate a whole list in one call (pydantic-core loops over it)
_LIST_ADAPTERS = {model: TypeAdapter(list[model]) for model in FEATURES}  # type: ignore[valid-type]


def _json_type(value: Any) -> str:
    if isinstance(value, _NonFinite):
        return value.token
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _messages(exc: ValidationError) -> list[str]:
    """One message per bad field; NaN/Infinity get their own, clearer wording."""
    messages = []
    for error, text in zip(exc.errors(include_url=False), describe_errors(exc), strict=True):
        token = error.get("input")
        if isinstance(token, _NonFinite) and error["type"] != "extra_forbidden":
            field = ".".join(str(p) for p in error.get("loc", ())) or "record"
            text = f"{field}: {token.token} is not valid JSON; send a finite number"
        messages.append(text)
    return messages


def parse_body(data: bytes, content_type: str | None) -> tuple[Any, bool]:
    """The decoded JSON body and whether it was a list; ApiError for a bad envelope."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported content type",
            [f"Content-Type: must be application/json (got {content_type or 'none'!r})"],
        )
    if not data.strip():
        raise ApiError(400, "empty body", ["body: empty; send a JSON object or a JSON list"])
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):  # what json.loads says about a BOM
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed JSON", [f"body: not UTF-8 ({exc.reason})"]) from None
    except ValueError as exc:  # JSONDecodeError, or an int with too many digits
        raise ApiError(400, "malformed JSON", [f"body: not valid JSON ({exc})"]) from None
    return value, isinstance(value, list)


def validate_rows(value: Any, model: type[BaseModel]) -> list[dict[str, Any]]:
    """Validated feature rows (ignored columns dropped); ApiError naming every bad field."""
    is_list = isinstance(value, list)
    items = value if is_list else [value]
    if is_list and not items:
        raise ApiError(422, "invalid input", ["body: empty list; send at least one record"])
    if len(items) > MAX_BATCH:
        raise ApiError(
            422,
            "too many records",
            [f"body: {len(items)} records; send at most {MAX_BATCH} per request"],
        )
    features = FEATURES[model]
    try:  # the usual case, all valid: one pydantic call for the whole list
        records = _LIST_ADAPTERS[model].validate_python(items)
    except ValidationError:
        pass  # validated again one by one below, for one message per bad field
    else:
        return [{name: record.__dict__[name] for name in features} for record in records]
    rows: list[dict[str, Any]] = []
    details: list[str] = []
    for index, item in enumerate(items):
        prefix = f"item {index}: " if is_list else ""
        if not isinstance(item, dict):
            details.append(f"{prefix}record: must be a JSON object (got {_json_type(item)})")
            continue
        try:
            record = model.model_validate(item)
        except ValidationError as exc:
            details.extend(prefix + m for m in _messages(exc))
            continue
        rows.append({name: getattr(record, name) for name in features})
    if details:
        limit = 50
        if len(details) > limit:
            details = [*details[:limit], f"... and {len(details) - limit} more"]
        raise ApiError(422, "invalid input", details)
    return rows
