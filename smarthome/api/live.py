"""``GET /live?limit=N``: the stream scorer's newest predictions and alerts
(``smarthome.observe.live``); Kafka down is said in the answer, never an error."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from smarthome.api.validation import ApiError
from smarthome.observe.live import DEFAULT_LIMIT, MAX_LIMIT, LiveSource
from smarthome.observe.status import StatusSource

bp = Blueprint("live", __name__)


@bp.record_once
def _source(state) -> None:
    """Read the topics ``GET /pipeline`` watches, on the same brokers."""
    status: StatusSource = state.app.extensions["status_source"]
    state.app.extensions["live_source"] = LiveSource(
        status.bootstrap_servers, status.predictions_topic, status.alerts_topic
    )


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(
            422,
            "invalid query parameter",
            [f"limit: must be a whole number from 1 to {MAX_LIMIT} (got {raw[:40]!r})"],
        )
    return int(text)


@bp.get("/live")
def live() -> Response:
    source: LiveSource = current_app.extensions["live_source"]
    return jsonify(source.view(_limit()).model_dump(mode="json"))
