"""The prediction answers (``contracts.api`` types them), filled from the loaded set.

They are built as plain dicts: a list request answers up to 1,000 rows, and the UI reads
them back through ``EfficiencyResult`` / ``MalfunctionResult`` / ``SegmentResult``.
"""

from __future__ import annotations

import math
from typing import Any

from smarthome.api.validation import ApiError
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.predictions import EFFICIENCY_LABELS
from smarthome.scoring.served import ServedSet


def malfunction_note(manifest: Manifest) -> str | None:
    """The manifest's honest note when the regressor does not beat the mean."""
    section = manifest.models.malfunction
    return None if section.beats_baseline else section.note


def _finite(values: list[float], what: str) -> None:
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        where = ", ".join(f"item {i}" for i in bad[:10]) if len(values) > 1 else "record"
        raise ApiError(
            422, "invalid input", [f"{where}: values too extreme to score ({what} not finite)"]
        )


def efficiency(model_set: ServedSet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    predictions = model_set.predict_efficiency(rows)
    _finite([p for _, p in predictions], "probability")
    return [
        {
            "predicted_efficiency_class": int(cls),
            "label": EFFICIENCY_LABELS[int(cls)],
            "probability_of_predicted_class": float(prob),
            "model_set": model_set.name,
        }
        for cls, prob in predictions
    ]


def malfunction(model_set: ServedSet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    values = [float(v) for v in model_set.predict_malfunction(rows)]
    _finite(values, "prediction")
    note = malfunction_note(model_set.manifest)
    extra = {"note": note} if note else {}
    return [{"predicted_malfunctions": v, "model_set": model_set.name, **extra} for v in values]


def segment(model_set: ServedSet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = {
        s.id: {
            "description": s.description,
            "model_set": model_set.name,
            "description_id": s.describe("id"),
            "segment_name": s.named("en"),
            "segment_name_id": s.named("id"),
            "efficient_share": s.efficiency_rate,
        }
        for s in model_set.clusters.clusters
    }
    return [{"device_segment_id": int(cid), **answers[int(cid)]} for cid in model_set.segment(rows)]
