"""Train the cumulative model sets from the batch files (DESIGN §6).

    spark-submit spark_training.py            # or: python spark_training.py
    spark-submit spark_training.py --watch    # keep training as batches are published
    spark-submit spark_training.py --watch --latest-only   # keep up: one set on all so far

Set N is trained on batch files 1..N (file-name order); a run trains only the missing sets.
Set N reads N files, so every set of N files costs N(N+1)/2 file reads: bound it with
--max-sets M (only the newest M sets) or --latest-only (M = 1), or write fewer, bigger
batch files (kafka_consumer_batch.py --batch-size).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from smarthome.cli import add_metrics_flag, run
from smarthome.config import env, help_default
from smarthome.training.config import K_CANDIDATES

PROG = "spark_training.py"


def _segments(value: str) -> int | None:
    """``--k``: a whole number, or 'auto' (None: training chooses)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number or 'auto': {value!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-dir", default=env("BATCH_DIR"), help=f"batch files {help_default('BATCH_DIR')}"
    )
    parser.add_argument(
        "--model-dir", default=env("MODEL_DIR"), help=f"model sets {help_default('MODEL_DIR')}"
    )
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master; default: spark-submit's when run by spark-submit, else "
        f"{help_default('SPARK_MASTER')}",
    )
    parser.add_argument(
        "--k",
        type=_segments,
        default=None,
        metavar="N|auto",
        help="KMeans segments: N, or auto = the count of "
        f"{', '.join(map(str, K_CANDIDATES))} whose segments have the highest silhouette "
        "(default: auto; 4 with --quick)",
    )
    parser.add_argument(
        "--min-rows", type=int, default=50, help="skip sets with fewer rows (default: 50)"
    )
    parser.add_argument("--seed", type=int, default=42, help="split and model seed (default: 42)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--retrain-all", action="store_true", help="retrain every set 1..N")
    mode.add_argument(
        "--latest-only",
        action="store_true",
        help="train only set N on all N batch files (with --watch: each round, so a watch "
        "that falls behind the stream skips the sets in between; make demo runs this)",
    )
    mode.add_argument(
        "--max-sets",
        type=int,
        default=0,
        metavar="M",
        help="train only the newest M sets (N-M+1..N of N batch files), never older ones: "
        "set N reads N files, so every set costs N(N+1)/2 file reads, M sets at most M*N "
        "(default: 0 = every set)",
    )
    parser.add_argument(
        "--watch", action="store_true", help="keep training as new batches arrive, until Ctrl-C"
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=5.0, help="--watch: batch folder poll interval"
    )
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="serve every new set at once (the champion pointer follows the newest set); the "
        "gate's checks are still recorded in each set's promotion.json",
    )
    parser.add_argument(
        "--gate-tolerance",
        type=float,
        default=None,
        metavar="T",
        help="promotion gate: how much lower a candidate's held-out accuracy and F1 may be "
        "than the champion's (default: 0.02)",
    )
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        metavar="URI",
        help="log every published set to MLflow (a run, its models as registered versions, the "
        "alias 'champion' on the served set), e.g. sqlite:///mlflow.db; env MLFLOW_TRACKING_URI "
        "(default: off)",
    )
    add_metrics_flag(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small models (few shallow trees, 4 segments without the k search) for smoke"
        " tests; not for real use",
    )
    args = parser.parse_args(argv)
    if args.k is not None and args.k < 2:
        parser.error("--k must be at least 2, or auto")
    if args.min_rows < 1:
        parser.error("--min-rows must be at least 1")
    if args.poll_seconds <= 0:
        parser.error("--poll-seconds must be positive")
    if args.gate_tolerance is not None and not 0 <= args.gate_tolerance <= 1:
        parser.error("--gate-tolerance must be between 0 and 1")
    if args.max_sets < 0:
        parser.error("--max-sets must be >= 0 (0 = every set)")
    if args.watch and args.max_sets:
        parser.error("--watch trains each set as its batch arrives; bound it with --latest-only")
    if args.watch and args.retrain_all:
        parser.error("--watch cannot be combined with --retrain-all")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    batch_dir, model_dir = Path(args.batch_dir), Path(args.model_dir)
    # imported late so that --help and flag errors answer without starting Java
    from smarthome.drift.reports import check_new_batches
    from smarthome.promotion.gate import DEFAULT_TOLERANCE, GateSettings, current_champion
    from smarthome.tracking.follow import track_training
    from smarthome.training.batches import check_header
    from smarthome.training.config import TrainConfig
    from smarthome.training.planner import Selection, batch_files, describe, nothing_new, plan
    from smarthome.training.runner import clean_tmp, train, training_lock, watch
    from smarthome.training.spark import get_spark
    from smarthome.training.storage_check import check_shared_storage

    cfg = TrainConfig(k=args.k, seed=args.seed, quick=args.quick)
    selection = Selection(args.retrain_all, args.latest_only, args.max_sets)
    tolerance = DEFAULT_TOLERANCE if args.gate_tolerance is None else args.gate_tolerance
    gate = GateSettings(tolerance=tolerance, enforce=not args.no_gate)
    if args.metrics_port:
        from smarthome.observe.drift_metrics import DriftCollector
        from smarthome.observe.metrics import TrainingCollector, serve

        serve(args.metrics_port, TrainingCollector(model_dir), DriftCollector(model_dir))
    if not args.watch:  # fail fast, before starting Spark
        files = batch_files(batch_dir)
        for path in files:
            check_header(path)
    with training_lock(model_dir):
        clean_tmp(model_dir)
        todo = [] if args.watch else plan(files, model_dir, selection, print)
        if not args.watch and not todo:
            print(nothing_new(len(files), model_dir, selection), flush=True)
            return 0
        on_published = track_training(args.mlflow_uri, model_dir)  # None: not tracked
        print(f"starting Spark ({args.master or 'default master'})", flush=True)
        spark = get_spark(args.master, app_name="spark_training")
        try:
            if (tasks := check_shared_storage(spark, batch_dir, model_dir)) is not None:
                print(f"storage check: {tasks} executor slot(s) see the driver's files", flush=True)
            if args.watch:
                try:
                    watch(
                        spark,
                        batch_dir,
                        model_dir,
                        cfg,
                        poll_seconds=args.poll_seconds,
                        min_rows=args.min_rows,
                        latest_only=args.latest_only,
                        gate=gate,
                        on_published=on_published,
                    )
                except KeyboardInterrupt:
                    print("stopped watching", flush=True)
                return 0
            if (cost := describe(todo, len(files), selection)) is not None:
                print(cost, flush=True)
            if files:
                check_new_batches(files, model_dir, batch_dir, current_champion(model_dir))
            train(
                spark,
                todo,
                model_dir,
                cfg,
                min_rows=args.min_rows,
                retrain=args.retrain_all,
                gate=gate,
                on_published=on_published,
            )
        finally:
            clean_tmp(model_dir)
            with contextlib.suppress(Exception):  # may fail after Ctrl-C; nothing to keep
                spark.stop()
    return 0


if __name__ == "__main__":
    run(main, PROG)
