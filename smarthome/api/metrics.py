"""``GET /metrics``: the API's Prometheus metrics, summed over every worker process.

granian serves with several worker processes; each counts its own requests, so the metrics
use ``prometheus_client``'s multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set
(``app_api.py`` sets it to a fresh folder): every process writes its values to files there
and a scrape, whichever worker answers it, adds them up. Without it (tests, one process)
each app has a registry of its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from smarthome.api.routes import PREDICTED_ROWS
from smarthome.config import MULTIPROC_ENV

#: predictions take a fraction of a millisecond: buckets from 0.25 ms to 2.5 s
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5)
MODEL_OF_PATH = {
    "/predict_efficiency": "efficiency",
    "/predict_malfunction": "malfunction",
    "/get_device_segment": "clustering",
}


class _SetAge(Collector):
    """The loaded set's age, computed when scraped (by the worker that answers)."""

    def __init__(self, holder: Any) -> None:
        self.holder = holder

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "smarthome_api_model_set_age_seconds", "seconds since the loaded set was trained"
        )
        current = self.holder.current
        if current is not None:
            created = current.manifest.created.timestamp()
            family.add_metric([], max(0.0, time.time() - created))
        yield family


def install(app: Flask, holder: Any) -> None:
    """Count every request of ``app`` and serve ``GET /metrics``."""
    shared = bool(os.environ.get(MULTIPROC_ENV))
    own = None if shared else CollectorRegistry()
    registry: Any = own  # None: metrics write to the multiprocess files only
    requests = Counter(
        "smarthome_api_requests", "requests by endpoint and status", ["endpoint", "status"],
        registry=registry,
    )  # fmt: skip
    latency = Histogram(
        "smarthome_api_request_seconds", "time to answer, by endpoint", ["endpoint"],
        buckets=LATENCY_BUCKETS, registry=registry,
    )  # fmt: skip
    rows = Counter(
        "smarthome_api_predicted_rows", "records scored, by model", ["model"], registry=registry
    )
    set_number = Gauge(
        "smarthome_api_model_set_number", "number of the loaded model set (0: none)",
        multiprocess_mode="max", registry=registry,
    )  # fmt: skip
    set_rows = Gauge(
        "smarthome_api_model_set_rows_trained", "rows the loaded set was trained on",
        multiprocess_mode="max", registry=registry,
    )  # fmt: skip
    reloads = Counter(
        "smarthome_api_reloads", "newer model sets loaded (per worker process)", registry=registry
    )
    skipped = Counter(
        "smarthome_api_skipped_sets", "broken model sets skipped (per worker process)",
        registry=registry,
    )  # fmt: skip

    def loaded(model_set: Any) -> None:
        reloads.inc()
        set_number.set(int(str(model_set.name).rsplit("set", 1)[-1]))
        set_rows.set(model_set.manifest.rows)

    holder.on_loaded = loaded
    holder.on_skipped = lambda _name: skipped.inc()
    if holder.current is not None:  # loaded before the hooks were there
        loaded(holder.current)

    app.wsgi_app = _Counting(app, requests, latency, rows)  # type: ignore[method-assign]

    age = _SetAge(holder)
    if own is not None:
        own.register(age)

    def metrics() -> Response:
        if own is not None:
            return Response(generate_latest(own), mimetype=CONTENT_TYPE_LATEST)
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        scrape.register(age)
        return Response(generate_latest(scrape), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])


class _Counting:
    """WSGI middleware around the Flask app: count and time every request, by endpoint.

    Outside Flask's request hooks it costs one dict lookup and three metric updates per
    request (labelled children are looked up once per endpoint and status).
    """

    def __init__(self, app: Flask, requests: Counter, latency: Histogram, rows: Counter) -> None:
        self.wsgi_app = app.wsgi_app
        # every rule is a plain path (no variables): the path names the endpoint
        self.endpoints = {rule.rule for rule in app.url_map.iter_rules()}
        self.requests, self.latency, self.rows = requests, latency, rows
        self.children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ""

        def start(status_line: str, headers: list, exc_info: Any = None) -> Callable:
            nonlocal status
            status = status_line[:3]
            return start_response(status_line, headers, exc_info)

        body = self.wsgi_app(environ, start)
        path = environ.get("PATH_INFO", "")
        counter, histogram, scored_rows = self._child(
            path if path in self.endpoints else "unmatched", status
        )
        counter.inc()
        histogram.observe(time.perf_counter() - started)
        scored = environ.get(PREDICTED_ROWS)
        if scored and scored_rows is not None and status == "200":
            scored_rows.inc(scored)
        return body

    def _child(self, endpoint: str, status: str) -> tuple[Any, Any, Any]:
        found = self.children.get((endpoint, status))
        if found is None:
            model = MODEL_OF_PATH.get(endpoint)
            found = self.children[(endpoint, status)] = (
                self.requests.labels(endpoint, status),
                self.latency.labels(endpoint),
                self.rows.labels(model) if model else None,
            )
        return found
