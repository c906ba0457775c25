"""The endpoints (DESIGN §8): three predictions, status, manifests, segments, OpenAPI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel

from smarthome.api import openapi, results
from smarthome.api.validation import (
    ApiError,
    DeviceRequest,
    MalfunctionRequest,
    parse_body,
    validate_rows,
)
from smarthome.contracts import model_sets as registry
from smarthome.contracts.api import (
    DriftResponse,
    ModelsResponse,
    NoScores,
    SegmentsResponse,
    SetEntry,
    SetScores,
    StatusResponse,
    dump,
)
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.drift import read_batch_reports
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.promotion import ChampionPointer, Promotion, read_champion, read_promotion
from smarthome.scoring.holder import ModelHolder

bp = Blueprint("api", __name__)
#: where a prediction leaves how many rows it scored, for the metrics middleware
PREDICTED_ROWS = "smarthome.predicted_rows"


def holder() -> ModelHolder:
    return current_app.extensions["model_holder"]


def no_model_message(model_dir: Path) -> str:
    return f"no model set in {model_dir}; train one with: spark-submit spark_training.py"


def _loaded() -> Any:
    model_set = holder().current
    if model_set is None:
        # a server process whose reload thread has not looked since the first set was
        # published looks now: no client is told "no model set" while one is on disk
        holder().check()
        model_set = holder().current
    if model_set is None:
        raise ApiError(503, no_model_message(holder().model_dir))
    return model_set


def _predict(model: type[BaseModel], score: Callable[[Any, list], list[dict]]) -> Response:
    value, is_list = parse_body(request.get_data(cache=False), request.content_type)
    rows = validate_rows(value, model)
    answers = score(_loaded(), rows)
    request.environ[PREDICTED_ROWS] = len(answers)  # counted by the metrics middleware
    return jsonify(answers if is_list else answers[0])


@bp.post("/predict_efficiency")
def predict_efficiency() -> Response:
    return _predict(DeviceRequest, results.efficiency)


@bp.post("/predict_malfunction")
def predict_malfunction() -> Response:
    return _predict(MalfunctionRequest, results.malfunction)


@bp.post("/get_device_segment")
def get_device_segment() -> Response:
    return _predict(DeviceRequest, results.segment)


@bp.get("/")
def status() -> Response:
    h = holder()
    model_set = h.current
    loaded = model_set is not None
    body = StatusResponse(
        status="ok" if loaded else "no model set",
        model_set=model_set.name if loaded else None,
        # the original API's field: the set's number (clients written for it keep working)
        loaded_model_set=registry.set_number(model_set.name) if loaded else None,
        model_dir=str(h.model_dir),
        metrics=SetScores.of(model_set.manifest) if loaded else NoScores(),
        manifest=model_set.manifest if loaded else None,
        skipped_sets=dict(h.failed),
        hint=None if loaded else no_model_message(h.model_dir),
        worker_pid=os.getpid(),
        champion=_champion(h.model_dir),
        promotion=_promotion(h.model_dir / model_set.name) if loaded else None,
    )
    return jsonify(dump(body))


def _champion(model_dir: Path) -> ChampionPointer | None:
    """The pointer; None also when it is unreadable (the holder logs why and keeps serving)."""
    try:
        return read_champion(model_dir)
    except ContractError:
        return None


def _promotion(set_dir: Path) -> Promotion | None:
    try:
        return read_promotion(set_dir)
    except ContractError:
        return None


@bp.get("/healthz")
def healthz() -> Response:
    """A no-op endpoint: the benchmark's reference for the server's own overhead."""
    return jsonify({"status": "ok"})


def healthz_post() -> Response:
    """The no-op for POSTs: reads and ignores the body, so the benchmark can compare a
    prediction with a request of the same shape. Not an API: registered only with
    ``create_app(bench_noop=True)`` (``app_api.py --bench-noop``), never by default."""
    request.get_data(cache=False)
    return jsonify({"status": "ok"})


def _entry(
    set_dir: Path, loaded: str | None, failed: dict[str, str], champion: str | None
) -> SetEntry:
    """One set of ``GET /models``: its manifest, or why it cannot be read or served."""
    manifest, error = None, None
    try:
        manifest = Manifest.read(set_dir / registry.MANIFEST)
    except ContractError as exc:
        error = str(exc)
    return SetEntry(
        name=set_dir.name,
        loaded=set_dir.name == loaded,
        manifest=manifest,
        error=failed.get(set_dir.name, error),
        champion=set_dir.name == champion,
        promotion=_promotion(set_dir),
    )


@bp.get("/models")
def models() -> Response:
    h = holder()
    pointer = _champion(h.model_dir)
    champion = pointer.set if pointer else None
    sets = [
        _entry(d, h.current_name, h.failed, champion)
        for d in reversed(registry.list_sets(h.model_dir))
    ]
    body = ModelsResponse(model_dir=str(h.model_dir), sets=sets, champion=champion)
    return jsonify(dump(body))


@bp.get("/drift")
def drift() -> Response:
    """Every batch file's drift report, oldest first (DESIGN §17)."""
    h = holder()
    pointer = _champion(h.model_dir)
    body = DriftResponse(
        model_dir=str(h.model_dir),
        champion=pointer.set if pointer else None,
        batches=read_batch_reports(h.model_dir),
    )
    return jsonify(dump(body))


@bp.get("/segments")
def segments() -> Response:
    model_set = _loaded()
    return jsonify(dump(SegmentsResponse(model_set=model_set.name, clusters=model_set.clusters)))


@bp.get("/openapi.json")
def openapi_json() -> Response:
    doc = current_app.extensions.get("openapi_doc")
    if doc is None:
        doc = current_app.extensions["openapi_doc"] = openapi.build_document()
    return jsonify(doc)
