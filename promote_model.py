"""Choose the served model set: promote one, roll back to the previous champion, or show why.

    python promote_model.py status              # the champion and each set's gate decision
    python promote_model.py promote SET         # SET: a folder name or a set number
    python promote_model.py rollback            # the champion before the current one

The API and the stream scorer serve the champion named by <model dir>/champion.json; this
replaces it atomically, so they switch between two requests, without a restart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smarthome.cli import run
from smarthome.config import env, help_default

PROG = "promote_model.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", default=env("MODEL_DIR"), help=f"model sets {help_default('MODEL_DIR')}"
    )
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        metavar="URI",
        help="move the MLflow alias 'champion' with the pointer (the store spark_training.py "
        "logs to); env MLFLOW_TRACKING_URI (default: off)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="the champion and why each set was or was not promoted")
    promote = commands.add_parser("promote", help="make SET the champion")
    promote.add_argument("set", metavar="SET", help="a set's folder name or its number")
    commands.add_parser("rollback", help="make the previous champion the champion again")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from smarthome.promotion import commands

    model_dir = Path(args.model_dir)
    if args.command == "status":
        for line in commands.status_lines(model_dir):
            print(line)
        return 0
    from smarthome.tracking.follow import track_moves

    track_moves(args.mlflow_uri)  # None: not tracked
    if args.command == "promote":
        change = commands.promote(model_dir, args.set)
    else:
        change = commands.rollback(model_dir)
    print(f"champion: {change.after} (was {change.before or 'none'}; {change.by})", flush=True)
    return 0


if __name__ == "__main__":
    run(main, PROG)
