"""Serve the smart-home predictions over HTTP with waitress (DESIGN §8).

    python app_api.py [--host 127.0.0.1] [--port 5000] [--model-dir spark_models]

The newest model set in --model-dir is loaded at start and re-checked every
--reload-seconds, so sets trained while the API runs are picked up without a restart.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from smarthome.cli import UserError, run
from smarthome.config import env, help_default

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
        "--threads", type=int, default=4, help="waitress worker threads (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from waitress import create_server

    from smarthome.api import create_app

    app = create_app(model_dir, reload_seconds=args.reload_seconds)
    try:
        server = create_server(app, host=args.host, port=args.port, threads=args.threads)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
            "stop the other server or pass --port"
        ) from None
    holder = app.extensions["model_holder"]
    loaded = holder.current_name or "none yet (predictions answer 503 until one is trained)"
    print(f"serving on http://{args.host}:{args.port}  model set: {loaded}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    finally:
        holder.stop()
        server.close()
    return 0


if __name__ == "__main__":
    run(main, PROG)
