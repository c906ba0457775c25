"""The Flask API (DESIGN §8): ``create_app(model_dir=...)`` builds a ready-to-serve app.

It scores with the numpy scorer (``smarthome.scoring.model_set``) and never imports Spark.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, jsonify
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from smarthome.api.live import bp as live_bp
from smarthome.api.routes import bp, healthz_post
from smarthome.api.status import bp as status_bp
from smarthome.api.validation import MAX_BATCH, MAX_BODY_BYTES, ApiError
from smarthome.observe.status import StatusSource
from smarthome.scoring.holder import Loader, ModelHolder, default_loader

__all__ = ["create_app", "ModelHolder"]

log = logging.getLogger("smarthome.api")


def _error(status: int, message: str, details: list[str]) -> tuple[Response, int]:
    return jsonify({"error": message, "details": details}), status


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    if status == 413:
        return _error(
            413,
            "request body too large",
            [f"body: larger than {MAX_BODY_BYTES} bytes; send at most {MAX_BATCH} records"],
        )
    response, code = _error(status, (exc.name or "error").lower(), [exc.description or ""])
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response, code


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unexpected error")
    return _error(500, "internal server error", [f"{type(exc).__name__}: see the server log"])


def create_app(
    model_dir: Path | str = "spark_models",
    *,
    reload_seconds: float = 2.0,
    loader: Loader = default_loader,
    status_source: StatusSource | None = None,
    bench_noop: bool = False,
    metrics: bool = True,
) -> Flask:
    """The API serving the newest set in ``model_dir``, re-checked every ``reload_seconds``.

    ``reload_seconds=0`` disables the background watcher (tests call ``holder.check()``).
    ``status_source`` says where ``GET /pipeline`` and ``GET /live`` look (default: the
    environment's settings).
    ``bench_noop`` adds ``POST /healthz``, a no-op the benchmark compares predictions with.
    ``metrics`` counts every request and serves ``GET /metrics`` (``smarthome.api.metrics``).
    """
    app = Flask("smarthome.api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    holder = ModelHolder(model_dir, loader)
    holder.check()
    holder.start(reload_seconds)
    app.extensions["model_holder"] = holder
    app.extensions["status_source"] = status_source or default_status_source(Path(model_dir))
    app.register_blueprint(bp)
    app.register_blueprint(status_bp)
    app.register_blueprint(live_bp)
    if metrics:
        from smarthome.api.metrics import install

        install(app, holder)
    if bench_noop:
        app.add_url_rule("/healthz", "healthz_post", healthz_post, methods=["POST"])
    app.register_error_handler(ApiError, lambda e: _error(e.status, e.message, e.details))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    # CORS headers only where a browser asks (its cross-origin requests carry Origin): by
    # default flask-cors builds them for every answer, a quarter of a prediction's time
    CORS(app, always_send=False)
    return app


def default_status_source(model_dir: Path) -> StatusSource:
    from smarthome.config import CONSUMER_GROUP, DEFAULTS, env
    from smarthome.kafka_settings import bootstrap_servers

    return StatusSource(
        # KAFKA_BOOTSTRAP_SERVERS, else the KAFKA_CONFIG file's bootstrap.servers
        bootstrap_servers=bootstrap_servers(None, DEFAULTS["KAFKA_BOOTSTRAP_SERVERS"]),
        topic=env("KAFKA_TOPIC"),
        group=CONSUMER_GROUP,
        batch_dir=Path(env("BATCH_DIR")),
        model_dir=model_dir,
    )
