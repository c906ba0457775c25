"""``GET /pipeline``: every stage's status at a glance (``smarthome.observe.status``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from smarthome.observe.status import StatusSource

bp = Blueprint("status", __name__)


@bp.get("/pipeline")
def pipeline_status() -> Response:
    source: StatusSource = current_app.extensions["status_source"]
    return jsonify(source.status().model_dump(mode="json"))
