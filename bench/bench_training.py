"""Seconds to train one model set (all three models, full configuration) on the full dataset.

- warm: a second set in the same SparkSession, as ``spark_training.py --watch`` trains, with
  today's settings and with ``--legacy-speed`` (the settings before issue 14), alternating,
  and the seconds of each step;
- fresh: ``spark-submit spark_training.py --latest-only`` from nothing (JVM start included);
- rerun with nothing new: ``spark-submit spark_training.py`` when every set exists.

    python -m bench.bench_training
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from smarthome.config import env  # noqa: E402
from smarthome.devtools.batches import write_batches  # noqa: E402

SPARK_SUBMIT = ROOT / ".venv" / "bin" / "spark-submit"


def venv_env() -> dict[str, str]:
    environ = dict(os.environ)
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    environ["PYSPARK_PYTHON"] = environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return environ


#: warm sets per configuration in the before/after comparison
WARM_PAIRS = 3
#: further sets with today's settings in the same session, as a long ``--watch`` trains them;
#: the JIT is still compiling Spark's code ten sets in, so the last few show where it settles
LONG_WATCH_SETS = 8
STEADY = 3
#: the steps of build_set's log, each ending at the line that contains its marker (the three
#: models fit, evaluate, save and export side by side, so that is one step; the fit seconds of
#: each model come from the manifest, see FITS)
STEPS = {
    "read + split": "held out); training",
    "fit, evaluate, profile, save, export": ": trained;",
    "manifest, publish": " published ",
}
#: each model's fit alone (``training_seconds`` in the manifest), in the order of the table
FITS = ("efficiency", "malfunction", "clustering")


def step_seconds(lines: list[str]) -> list[float]:
    """Seconds of each of STEPS, then the total, from build_set's ``[ 12.3s] ...`` log lines."""
    marks = []
    for marker in STEPS.values():
        line = next(x for x in lines if marker in x)
        stamp = re.match(r"\[\s*([\d.]+)s\]", line)
        marks.append(float(stamp.group(1)) if stamp else float(line.rsplit(", ", 1)[1][:-2]))
    return [b - a for a, b in zip([0.0, *marks[:-1]], marks, strict=True)] + [marks[-1]]


def fit_seconds(model_dir: Path) -> list[float]:
    """The manifest's ``training_seconds`` of each of FITS, for the set just published."""
    from smarthome.contracts import model_sets as registry
    from smarthome.contracts.manifest import Manifest

    manifest = Manifest.read(registry.newest_set(model_dir) / registry.MANIFEST)
    return [getattr(manifest.models, name).training_seconds for name in FITS]


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
    from smarthome.training.models import TrainConfig
    from smarthome.training.runner import run_once
    from smarthome.training.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    batch_dir = work / "batches"
    write_batches(ROOT / env("DATASET_PATH"), batch_dir)
    quiet = lambda _line: None  # noqa: E731

    start = time.perf_counter()
    spark = get_spark("local[*]", app_name="bench_training")
    session = time.perf_counter() - start
    start = time.perf_counter()
    run_once(spark, batch_dir, work / "cold", TrainConfig(), latest_only=True, log=quiet)
    cold = time.perf_counter() - start
    steps: dict[str, list[list[float]]] = {"before (--legacy-speed)": [], "after": []}
    for run in range(WARM_PAIRS * 2):  # alternating, so both see the same machine load
        label = list(steps)[run % 2]
        cfg = TrainConfig() if label == "after" else TrainConfig.before_issue_14()
        lines: list[str] = []
        run_once(spark, batch_dir, work / f"pair{run}", cfg, latest_only=True, log=lines.append)
        steps[label].append(fit_seconds(work / f"pair{run}") + step_seconds(lines))
    long_watch = []
    for run in range(LONG_WATCH_SETS):
        start = time.perf_counter()
        run_once(spark, batch_dir, work / f"long{run}", TrainConfig(), latest_only=True, log=quiet)
        long_watch.append(time.perf_counter() - start)
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
    print(f"| first set in a new session (cold JIT) | {cold:.1f} |")
    warm = ", ".join(f"{r[-1]:.1f}" for r in steps["after"])
    print(f"| warm set, `--watch`-style (same session, table below) | {warm} |")
    sets_before = 1 + 2 * WARM_PAIRS + LONG_WATCH_SETS - STEADY
    steady = ", ".join(f"{x:.1f}" for x in long_watch[-STEADY:])
    print(f"| warm set after {sets_before} sets in the session (a long `--watch`) | {steady} |")
    print(f"| fresh `spark-submit spark_training.py --latest-only` | {fresh:.1f} |")
    print(f"| rerun with nothing new (`spark-submit`, no Spark started) | {rerun:.1f} |")
    print(f"| rerun with nothing new (`python spark_training.py`) | {rerun_python:.1f} |")
    print(
        "\nwarm set, seconds per step (median of "
        f"{WARM_PAIRS}; the three models fit side by side, so their fits overlap the step "
        "after them):\n"
    )
    columns = [f"{name} fit" for name in FITS] + list(STEPS)
    print("| settings | " + " | ".join(columns) + " | total |")
    print("|---|" + "---|" * (len(columns) + 1))
    for label, runs in steps.items():
        medians = [statistics.median(r[i] for r in runs) for i in range(len(columns) + 1)]
        print(f"| {label} | " + " | ".join(f"{m:.1f}" for m in medians) + " |")
    before, after = (statistics.median(r[-1] for r in runs) for runs in steps.values())
    print(f"\nwarm set: {after:.1f} s against {before:.1f} s before ({after / before:.2f}x)")
    print(f"\nmachine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
