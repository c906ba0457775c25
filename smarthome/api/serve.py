"""Run the API under a production WSGI server: granian's worker processes, or waitress.

granian (Rust HTTP, one Python process per worker) serves ~4x waitress's requests/s on two
cores (docs/benchmarks.md): waitress runs every request in threads of one process, so the
GIL caps it at one core. granian needs several processes only where it can share a socket
between them; on Windows it would serve with one worker, so there ``auto`` picks waitress.

Every granian worker builds its own app (``worker_app``), so each has its own model holder
whose watcher thread polls ``model_dir``: all workers serve a new set within one
``reload_seconds`` of its publication, each swapping atomically.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smarthome.config import SCORER_GROUP
from smarthome.contracts.predictions import ALERTS_TOPIC, PREDICTIONS_TOPIC
from smarthome.errors import UserError

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("smarthome.api")

SERVERS = ("auto", "granian", "waitress")
#: Python threads per granian worker. The predictions are CPU work under one GIL: more threads
#: only take turns at it, and every 5 ms switch lands in someone's latency (granian's default,
#: 256 threads, doubled the p99 and cost a third of the 100-row requests/s). The second thread
#: lets a request that waits on I/O (the first ``GET /pipeline``, on Kafka) not stall the worker.
GRANIAN_THREADS = 2
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


@dataclass(frozen=True)
class AppSettings:
    """What each worker process needs to build the same app (picklable for spawned workers)."""

    model_dir: str
    reload_seconds: float
    bench_noop: bool = False
    metrics: bool = True
    #: where GET /pipeline looks
    batch_dir: str = "batched_data"
    bootstrap_servers: str = "localhost:9092"
    topic: str = "smart_home_stream"
    group: str = "smart-home-batcher"
    #: where GET /pipeline and GET /live look for the stream scorer
    scorer_group: str = SCORER_GROUP
    predictions_topic: str = PREDICTIONS_TOPIC
    alerts_topic: str = ALERTS_TOPIC


def build_app(settings: AppSettings) -> Flask:
    from smarthome.api import create_app
    from smarthome.observe.status import StatusSource

    status_source = StatusSource(
        settings.bootstrap_servers,
        settings.topic,
        settings.group,
        Path(settings.batch_dir),
        Path(settings.model_dir),
        scorer_group=settings.scorer_group,
        predictions_topic=settings.predictions_topic,
        alerts_topic=settings.alerts_topic,
    )
    return create_app(
        Path(settings.model_dir),
        reload_seconds=settings.reload_seconds,
        bench_noop=settings.bench_noop,
        metrics=settings.metrics,
        status_source=status_source,
    )


def worker_app(settings: AppSettings) -> Flask:
    """The app of one granian worker process (called in the worker, after it starts)."""
    return build_app(settings)


def default_server() -> str:
    """granian where it runs several workers (POSIX) and is installed, else waitress."""
    if sys.platform == "win32":
        return "waitress"
    try:
        import granian  # noqa: F401
    except ImportError:
        return "waitress"
    return "granian"


def default_workers() -> int:
    """One worker per core: each is a whole Python interpreter with its own GIL."""
    return max(1, os.cpu_count() or 1)


def check_port_free(host: str, port: int) -> None:
    """UserError naming the address if it cannot be bound (before any worker starts)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); check --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "stop the other server or pass --port"
            ) from None


def _log_config() -> dict:
    """granian's logging config plus a root handler, so our ``smarthome.api`` lines show."""
    return {
        "formatters": {
            "generic": {"()": "logging.Formatter", "fmt": LOG_FORMAT},
            "access": {"()": "logging.Formatter", "fmt": "%(message)s"},
        },
        "root": {"handlers": ["console"], "level": "INFO"},
    }


def serve_granian(settings: AppSettings, host: str, port: int, workers: int) -> None:
    """Serve until SIGINT/SIGTERM with ``workers`` granian worker processes."""
    from granian.constants import Interfaces
    from granian.server import Server

    server = Server(
        target="smarthome.api.serve:worker_app",  # shown in granian's log; the loader builds it
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        log_dictconfig=_log_config(),
        workers_kill_timeout=10,
        blocking_threads=GRANIAN_THREADS,
    )
    server.serve(target_loader=functools.partial(worker_app, settings), wrap_loader=False)


def serve_waitress(settings: AppSettings, host: str, port: int, threads: int) -> None:
    """Serve until SIGTERM/Ctrl-C with waitress: one process, ``threads`` threads."""
    from waitress import create_server

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    app = build_app(settings)
    try:
        server = create_server(app, host=host, port=port, threads=threads)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "stop the other server or pass --port"
        ) from None
    holder = app.extensions["model_holder"]
    try:
        server.run()
    finally:
        holder.stop()
        server.close()
