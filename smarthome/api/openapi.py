"""``GET /openapi.json``: an OpenAPI 3.1 document generated from the pydantic models.

The request schemas are the very classes that validate requests, so the document and the
validation cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from smarthome.api.validation import MAX_BATCH, DeviceRequest, MalfunctionRequest
from smarthome.contracts import api as bodies
from smarthome.observe.live import DEFAULT_LIMIT, MAX_LIMIT, LiveView
from smarthome.observe.status import PipelineStatus

REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], str]] = [
    (DeviceRequest, "validation"),
    (MalfunctionRequest, "validation"),
    (bodies.EfficiencyResult, "serialization"),
    (bodies.MalfunctionResult, "serialization"),
    (bodies.SegmentResult, "serialization"),
    (bodies.ErrorResponse, "serialization"),
    (bodies.StatusResponse, "serialization"),
    (bodies.ModelsResponse, "serialization"),
    (bodies.SegmentsResponse, "serialization"),
    (bodies.DriftResponse, "serialization"),
    (bodies.Health, "serialization"),
    (PipelineStatus, "serialization"),
    (LiveView, "serialization"),
]

_ERRORS = {
    "400": "Malformed JSON or empty body",
    "413": "Body too large",
    "415": "Content-Type is not application/json",
    "422": f"A field is missing, unknown, of the wrong type or out of range, or the list "
    f"is empty or longer than {MAX_BATCH}",
    "503": "No model set loaded yet; train one with spark_training.py",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _one_or_list(model: type[BaseModel], request: bool) -> dict[str, Any]:
    array: dict[str, Any] = {"type": "array", "items": _ref(model)}
    if request:
        array.update(minItems=1, maxItems=MAX_BATCH)
    return {"anyOf": [_ref(model), array]}


def _predict(summary: str, body: type[BaseModel], result: type[BaseModel]) -> dict[str, Any]:
    error = _ref(bodies.ErrorResponse)
    responses = {
        "200": _json(_one_or_list(result, False), "One result, or a list in request order"),
        **{code: _json(error, text) for code, text in _ERRORS.items()},
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _one_or_list(body, True)}},
            },
            "responses": responses,
        }
    }


def _get(summary: str, model: type[BaseModel], *codes: str) -> dict[str, Any]:
    responses = {"200": _json(_ref(model), summary)}
    responses.update({c: _json(_ref(bodies.ErrorResponse), _ERRORS[c]) for c in codes})
    return {"get": {"summary": summary, "responses": responses}}


def _live() -> dict[str, Any]:
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "How many of the newest predictions (and alerts) to list",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    }
    summary = (
        "The stream scorer's newest committed predictions and alerts, newest first, with their"
        " rate and latency; Kafka unreachable or a topic not created yet is said, not an error"
    )
    responses = {
        "200": _json(_ref(LiveView), summary),
        "422": _json(
            _ref(bodies.ErrorResponse), f"limit is not a whole number from 1 to {MAX_LIMIT}"
        ),
    }
    return {"get": {"summary": summary, "parameters": [limit], "responses": responses}}


def build_document(server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI document."""
    _, defs = models_json_schema(_MODELS, ref_template=REF)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Smart-home device predictions",
            "version": "1.0.0",
            "description": "Spark MLlib models scored without Spark (DESIGN §7-8). A POST "
            "body is one record or a JSON list of records; dataset columns the model does not "
            "use (UserID, SmartHomeEfficiency, and MalfunctionIncidents for malfunction) are "
            "accepted and ignored.",
        },
        "paths": {
            "/predict_efficiency": _predict(
                "Is the device efficient?", DeviceRequest, bodies.EfficiencyResult
            ),
            "/predict_malfunction": _predict(
                "How many malfunction incidents?", MalfunctionRequest, bodies.MalfunctionResult
            ),
            "/get_device_segment": _predict(
                "Which device segment?", DeviceRequest, bodies.SegmentResult
            ),
            "/": _get("Status, the loaded model set and its metrics", bodies.StatusResponse),
            "/models": _get("Every model set's manifest, newest first", bodies.ModelsResponse),
            "/segments": _get("The loaded set's cluster profiles", bodies.SegmentsResponse, "503"),
            "/drift": _get("Every batch file's drift report, oldest first", bodies.DriftResponse),
            "/healthz": _get("No-op liveness check", bodies.Health),
            "/pipeline": _get(
                "Topic, consumer group lag, batch files and model sets, each with when it was"
                " looked at; Kafka unreachable is said, not an error",
                PipelineStatus,
            ),
            "/live": _live(),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format) of every worker process",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
                }
            },
        },
        "components": {"schemas": defs["$defs"]},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
