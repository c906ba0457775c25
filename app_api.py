"""Serve the smart-home predictions over HTTP (DESIGN §8).

    python app_api.py [--host 127.0.0.1] [--port 5000] [--model-dir spark_models]

The newest model set in --model-dir is loaded at start and re-checked every
--reload-seconds, so sets trained while the API runs are picked up without a restart.
It serves with granian worker processes (one per core) on Linux and macOS, with waitress
elsewhere or with --server waitress.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from smarthome.api.serve import (
    SERVERS,
    AppSettings,
    check_port_free,
    default_server,
    default_workers,
    serve_granian,
    serve_waitress,
)
from smarthome.cli import add_kafka_flags, apply_kafka_flags, number, run
from smarthome.config import CONSUMER_GROUP, MULTIPROC_ENV, SCORER_GROUP, env, help_default
from smarthome.contracts.predictions import ALERTS_TOPIC, PREDICTIONS_TOPIC
from smarthome.errors import UserError

PROG = "app_api.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    parser.add_argument(
        "--model-dir",
        default=env("MODEL_DIR"),
        help=f"model sets folder {help_default('MODEL_DIR')}",
    )
    parser.add_argument(
        "--reload-seconds",
        type=float,
        default=2.0,
        help="how often to look for a newer model set; 0 = never (default: %(default)s)",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="auto",
        help="WSGI server; auto = granian on Linux/macOS, waitress on Windows or without "
        "granian (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=number(int, "--workers", 1),
        default=default_workers(),
        help="granian worker processes, each loading and reloading the model set on its own "
        "(default: one per core, %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=number(int, "--threads", 1),
        default=4,
        help="waitress worker threads (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-dir",
        default=env("BATCH_DIR"),
        help=f"batch files folder, for GET /pipeline {help_default('BATCH_DIR')}",
    )
    add_kafka_flags(parser)
    parser.add_argument(
        "--group",
        default=CONSUMER_GROUP,
        help=f"the consumer group GET /pipeline reports the lag of (default: {CONSUMER_GROUP})",
    )
    parser.add_argument(
        "--scorer-group",
        default=SCORER_GROUP,
        help=f"the stream scorer's consumer group, for GET /pipeline (default: {SCORER_GROUP})",
    )
    parser.add_argument(
        "--predictions-topic",
        default=PREDICTIONS_TOPIC,
        help=f"the stream scorer's predictions, for GET /pipeline and GET /live"
        f" (default: {PREDICTIONS_TOPIC})",
    )
    parser.add_argument(
        "--alerts-topic",
        default=ALERTS_TOPIC,
        help=f"the stream scorer's alerts, for GET /live (default: {ALERTS_TOPIC})",
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="do not count requests nor serve GET /metrics (Prometheus)",
    )
    parser.add_argument(
        "--bench-noop",
        action="store_true",
        help="also answer POST /healthz, a no-op that benchmarks compare predictions with "
        "(not part of the API)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = apply_kafka_flags(parse_args(argv))
    model_dir = Path(args.model_dir)
    if not model_dir.exists():
        raise UserError(
            f"model dir {model_dir} does not exist; train a model set with: "
            f"spark-submit spark_training.py --model-dir {model_dir}"
        )
    if not model_dir.is_dir():
        raise UserError(f"--model-dir {model_dir} is not a folder; pass the model sets folder")
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: must be between 1 and 65535")

    from smarthome.contracts import model_sets as registry

    check_port_free(args.host, args.port)  # one-line error before any worker starts
    settings = AppSettings(
        str(model_dir),
        args.reload_seconds,
        bench_noop=args.bench_noop,
        metrics=not args.no_metrics,
        batch_dir=args.batch_dir,
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        group=args.group,
        scorer_group=args.scorer_group,
        predictions_topic=args.predictions_topic,
        alerts_topic=args.alerts_topic,
    )
    # every worker process writes its metrics here and a scrape adds them up; set before any
    # import of prometheus_client, which reads it once (so never import it in this process)
    if settings.metrics:
        metrics_dir = Path(tempfile.mkdtemp(prefix="smarthome-api-metrics-"))
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        atexit.register(shutil.rmtree, metrics_dir, True)
    server = default_server() if args.server == "auto" else args.server
    if server == "granian":
        how = f"granian, {args.workers} worker process(es)"
    else:
        how = f"waitress, {args.threads} thread(s)"
    newest = registry.newest_set(model_dir)
    loaded = newest.name if newest else "none yet (predictions answer 503 until one is trained)"
    print(f"serving on http://{args.host}:{args.port} ({how})  newest set: {loaded}", flush=True)
    if server == "granian":
        serve_granian(settings, args.host, args.port, args.workers)  # handles SIGTERM itself
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        serve_waitress(settings, args.host, args.port, args.threads)
    return 0


if __name__ == "__main__":
    run(main, PROG)
