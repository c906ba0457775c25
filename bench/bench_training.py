"""Seconds to train one model set (all three models, full configuration) on the full dataset.

- warm: a second set in the same SparkSession, as ``spark_training.py --watch`` trains;
- fresh: ``spark-submit spark_training.py --latest-only`` from nothing (JVM start included);
- rerun with nothing new: ``spark-submit spark_training.py`` when every set exists.

    python -m bench.bench_training
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smarthome.config import env  # noqa: E402
from tests.fixtures_models import write_batches  # noqa: E402

SPARK_SUBMIT = ROOT / ".venv" / "bin" / "spark-submit"


def venv_env() -> dict[str, str]:
    environ = dict(os.environ)
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    environ["PYSPARK_PYTHON"] = environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return environ


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


def main() -> int:
    from smarthome.spark import get_spark
    from smarthome.training import TrainConfig
    from smarthome.training_sets import run_once

    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    batch_dir = work / "batches"
    write_batches(ROOT / env("DATASET_PATH"), batch_dir)
    quiet = lambda _line: None  # noqa: E731

    start = time.perf_counter()
    spark = get_spark("local[*]", app_name="bench_training")
    session = time.perf_counter() - start
    timings = []
    for run in range(3):
        start = time.perf_counter()
        run_once(spark, batch_dir, work / f"warm{run}", TrainConfig(), latest_only=True, log=quiet)
        timings.append(time.perf_counter() - start)
    spark.stop()

    fresh_dir = str(work / "fresh")
    args = ["--batch-dir", str(batch_dir), "--model-dir", fresh_dir, "--latest-only"]
    fresh = submit(*args)
    rerun = submit(*args)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "spark_training.py", *args], cwd=ROOT, check=True, capture_output=True
    )
    rerun_python = time.perf_counter() - start

    print("| measurement (5,403 rows, 3 models, full configuration) | seconds |")
    print("|---|---|")
    print(f"| SparkSession start in-process (local[*]) | {session:.1f} |")
    print(f"| first set in a new session (cold JIT) | {timings[0]:.1f} |")
    print(
        f"| warm set, `--watch`-style (2nd and 3rd set, same session) | "
        f"{timings[1]:.1f}, {timings[2]:.1f} |"
    )
    print(f"| fresh `spark-submit spark_training.py --latest-only` | {fresh:.1f} |")
    print(f"| rerun with nothing new (`spark-submit`, no Spark started) | {rerun:.1f} |")
    print(f"| rerun with nothing new (`python spark_training.py`) | {rerun_python:.1f} |")
    print(f"\nmachine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
