"""``GET /pipeline``: the whole pipeline at a glance (``smarthome.observe.pipeline``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from smarthome.observe.pipeline import PipelineSource

bp = Blueprint("pipeline", __name__)


@bp.get("/pipeline")
def pipeline() -> Response:
    source: PipelineSource = current_app.extensions["pipeline_source"]
    return jsonify(source.view().model_dump(mode="json"))
