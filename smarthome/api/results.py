"""Response bodies: pydantic models (for the OpenAPI document) and the code that fills them.

Field names are the original project's, so its curl calls and UI keep working, plus
``model_set`` (which set answered) and the segment description / malfunction-quality note.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from smarthome.api.validation import ApiError

LABELS = {0: "Not efficient", 1: "Efficient"}


class EfficiencyResult(BaseModel):
    predicted_efficiency_class: int = Field(ge=0, le=1, description="1 = efficient")
    label: str = Field(description="'Efficient' or 'Not efficient'")
    probability_of_predicted_class: float = Field(ge=0, le=1)
    model_set: str = Field(description="Name of the model set that answered")


class MalfunctionResult(BaseModel):
    predicted_malfunctions: float = Field(description="Predicted malfunction incidents")
    model_set: str
    note: str | None = Field(
        default=None,
        description="Present when the regressor is no better than predicting the mean",
    )


class SegmentResult(BaseModel):
    device_segment_id: int = Field(ge=0, description="KMeans cluster id")
    description: str = Field(description="Generated one-sentence profile of the segment")
    model_set: str


class ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, in a few words")
    details: list[str] = Field(description="One message per problem, naming the field")


class StatusResponse(BaseModel):
    status: str = Field(description="'ok', or 'no model set' (predictions answer 503)")
    model_set: str | None = Field(description="The loaded set's name")
    loaded_model_set: int | None = Field(
        description="The loaded set's number, as the original API answered"
    )
    model_dir: str
    metrics: dict[str, Any] = Field(description="Held-out metrics of each model of the set")
    manifest: dict[str, Any] | None = Field(description="The loaded set's manifest.json")
    skipped_sets: dict[str, str] = Field(description="Sets that failed to load: name -> reason")
    hint: str | None = None
    worker_pid: int = Field(
        description="The server process that answered: each worker loads and reloads on its own"
    )


class SetEntry(BaseModel):
    name: str
    loaded: bool = Field(description="True for the set answering predictions")
    manifest: dict[str, Any] | None = Field(description="manifest.json, null if unreadable")
    error: str | None = Field(description="Why the set is not usable, if it is not")


class ModelsResponse(BaseModel):
    model_dir: str
    sets: list[SetEntry] = Field(description="Every published set, newest first")


class SegmentsResponse(BaseModel):
    model_set: str
    clusters: dict[str, Any] | list[Any] = Field(description="The loaded set's clusters.json")


class Health(BaseModel):
    status: str = Field(description="Always 'ok' while the server answers")


def _model_sections(manifest: dict[str, Any]) -> dict[str, Any]:
    models = manifest.get("models")
    if isinstance(models, dict):
        return models
    return {k: manifest[k] for k in ("efficiency", "malfunction", "clustering") if k in manifest}


def metrics_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """Each model's held-out metrics (and baseline) from a manifest, tolerant of its layout."""
    out: dict[str, Any] = {}
    for name, section in _model_sections(manifest).items():
        if isinstance(section, dict):
            out[name] = {k: v for k, v in section.items() if "metric" in k or "baseline" in k}
    return out


def malfunction_note(manifest: dict[str, Any]) -> str | None:
    """The manifest's honest note when the regressor does not beat the mean."""
    section = _model_sections(manifest).get("malfunction")
    if not isinstance(section, dict) or section.get("beats_baseline", True):
        return None
    return section.get("note") or "this model is no better than predicting the mean"


def segment_descriptions(clusters: Any) -> dict[int, str]:
    """Cluster id -> generated description, from clusters.json."""
    entries = clusters.get("clusters", clusters) if isinstance(clusters, dict) else clusters
    if isinstance(entries, dict):
        entries = [{"cluster": k, **v} for k, v in entries.items() if isinstance(v, dict)]
    out: dict[int, str] = {}
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        key = next((k for k in ("cluster", "id", "segment", "cluster_id") if k in entry), None)
        if key is not None and str(entry[key]).isdigit():
            out[int(entry[key])] = str(entry.get("description", ""))
    return out


def _finite(values: list[float], what: str) -> None:
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        where = ", ".join(f"item {i}" for i in bad[:10]) if len(values) > 1 else "record"
        raise ApiError(
            422, "invalid input", [f"{where}: values too extreme to score ({what} not finite)"]
        )


def efficiency(model_set: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    predictions = model_set.predict_efficiency(rows)
    _finite([p for _, p in predictions], "probability")
    return [
        {
            "predicted_efficiency_class": int(cls),
            "label": LABELS[int(cls)],
            "probability_of_predicted_class": float(prob),
            "model_set": model_set.name,
        }
        for cls, prob in predictions
    ]


def malfunction(model_set: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    values = [float(v) for v in model_set.predict_malfunction(rows)]
    _finite(values, "prediction")
    note = malfunction_note(model_set.manifest)
    extra = {"note": note} if note else {}
    return [{"predicted_malfunctions": v, "model_set": model_set.name, **extra} for v in values]


def segment(model_set: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    descriptions = segment_descriptions(model_set.clusters)
    return [
        {
            "device_segment_id": int(cid),
            "description": descriptions.get(int(cid), f"segment {int(cid)}"),
            "model_set": model_set.name,
        }
        for cid in model_set.segment(rows)
    ]
