"""Seconds to train one model set (all three models, full configuration) on the full dataset.

- warm: a set in a SparkSession that has trained before, as ``spark_training.py --watch``
  trains, alternating with the plain-pyspark reference (``bench/plain_pyspark.py``: read,
  ``Pipeline.fit``, evaluate, ``PipelineModel.save``) so both see the same machine load; the
  seconds of each of the project's steps come from ``build_set``;
- after a long ``--watch`` (many sets in one session);
- fresh: ``spark-submit spark_training.py --latest-only`` from nothing (JVM start included);
- rerun with nothing new.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smarthome.devtools.workspace import venv_env

ROOT = Path(__file__).resolve().parent.parent

SPARK_SUBMIT = ROOT / ".venv" / "bin" / "spark-submit"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_training", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="warm sets of each kind, alternating (default: 3)"
    )
    parser.add_argument(
        "--long-watch",
        type=int,
        default=8,
        help="further sets in the same session, as a long --watch trains them (default: 8)",
    )
    parser.add_argument(
        "--no-submit", action="store_true", help="skip the fresh spark-submit and rerun rows"
    )
    return parser.parse_args(argv)


def submit(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(SPARK_SUBMIT), "--master", "local[*]", "spark_training.py", *args],
        cwd=ROOT,
        env=venv_env(),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.plain_pyspark import train_set
    from smarthome.config import env
    from smarthome.contracts.batch_files import list_batch_files
    from smarthome.devtools.batches import write_batches
    from smarthome.training.build import build_set
    from smarthome.training.config import TrainConfig
    from smarthome.training.planner import PlannedSet
    from smarthome.training.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    try:
        batch_dir = work / "batches"
        write_batches(ROOT / env("DATASET_PATH"), batch_dir)
        files = list_batch_files(batch_dir)
        planned = PlannedSet(number=len(files), files=files)
        cfg = TrainConfig()
        quiet = lambda _line: None  # noqa: E731

        start = time.perf_counter()
        spark = get_spark("local[*]", app_name="bench_training")
        session = time.perf_counter() - start
        cold = build_set(spark, planned, work / "cold", cfg, 1, quiet).seconds["total"]
        start = time.perf_counter()
        train_set(spark, files, work / "cold-reference", cfg)
        cold_reference = time.perf_counter() - start

        steps: list[dict[str, float]] = []
        reference: list[float] = []
        for run in range(args.pairs):
            built = build_set(spark, planned, work / f"warm{run}", cfg, 1, quiet)
            steps.append(built.seconds)
            start = time.perf_counter()
            train_set(spark, files, work / f"reference{run}", cfg)
            reference.append(time.perf_counter() - start)
        long_watch = [
            build_set(spark, planned, work / f"long{run}", cfg, 1, quiet).seconds["total"]
            for run in range(args.long_watch)
        ]
        spark.stop()

        print("| measurement (5,403 rows, 3 models, full configuration) | seconds |")
        print("|---|---|")
        print(f"| SparkSession start in-process (local[*]) | {session:.1f} |")
        print(f"| first set in a new session: project (cold JIT) | {cold:.1f} |")
        print(f"| first set in a new session: plain pyspark | {cold_reference:.1f} |")
        warm = ", ".join(f"{s['total']:.1f}" for s in steps)
        print(f"| warm set, project (`--watch`-style, same session) | {warm} |")
        print(f"| warm set, plain pyspark reference | {', '.join(f'{r:.1f}' for r in reference)} |")
        if long_watch:
            last = ", ".join(f"{x:.1f}" for x in long_watch[-3:])
            print(f"| warm set after {1 + 2 * args.pairs + len(long_watch) - 3} sets | {last} |")
        if not args.no_submit:
            fresh_dir = str(work / "fresh")
            submit_args = ["--batch-dir", str(batch_dir), "--model-dir", fresh_dir]
            fresh = submit(*submit_args, "--latest-only")
            rerun = submit(*submit_args, "--latest-only")
            print(f"| fresh `spark-submit spark_training.py --latest-only` | {fresh:.1f} |")
            print(f"| rerun with nothing new (`spark-submit`, no set trained) | {rerun:.1f} |")

        names = [name for name in steps[0] if name != "total"]
        print(f"\nwarm set, seconds per step (median of {args.pairs}):\n")
        print("| " + " | ".join(names) + " | total |")
        print("|" + "---|" * (len(names) + 1))
        medians = [statistics.median(s.get(name, 0.0) for s in steps) for name in names]
        total = statistics.median(s["total"] for s in steps)
        print("| " + " | ".join(f"{m:.2f}" for m in medians) + f" | {total:.2f} |")
        ref = statistics.median(reference)
        print(f"\nwarm set: {total:.1f} s against {ref:.1f} s plain pyspark ({total / ref:.2f}x)")
        print(
            f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
