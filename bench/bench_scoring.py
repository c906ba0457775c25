"""Scoring time: the numpy scorer (``smarthome.scoring``) versus ``PipelineModel.transform``.

Trains one model set on the whole dataset in a private temp folder (the training stage's own
code, ``--latest-only`` path), then times the efficiency pipeline for 1, 100 and 1,000
records both ways, and the three ``ModelSet`` methods as the API calls them (one record per
request, or a list). Prints markdown tables. Run: ``python -m bench.bench_scoring``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from smarthome.contracts.manifest import Manifest
from smarthome.contracts.model_sets import MANIFEST
from smarthome.devtools.processes import stop_children_at_exit

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 100, 1000)  # one record per request (the API's usual call), a list, a batch


def timed(fn: Callable[[], object], repeat: int, warmup: int = 3) -> tuple[float, float]:
    """(median, p99) seconds of ``fn`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def train_set(spark: object, work: Path) -> Path:
    from smarthome.contracts import model_sets as registry
    from smarthome.devtools.batches import write_batches
    from smarthome.training.config import TrainConfig
    from smarthome.training.runner import run_once

    batches = work / "batches"
    write_batches(ROOT / "dataset" / "smart_home_device_usage_data.csv", batches, parts=1)
    run_once(spark, batches, work / "models", TrainConfig(), latest_only=True, log=lambda _: None)
    newest = registry.newest_set(work / "models")
    assert newest is not None
    return newest


def main() -> int:
    argparse.ArgumentParser(
        prog="python -m bench.bench_scoring", description=__doc__.split("\n\n")[0]
    ).parse_args()
    from pyspark.ml import PipelineModel

    from smarthome.contracts.records import RECORD_COLUMNS
    from smarthome.scoring.model_set import ModelSet
    from smarthome.training.spark import get_spark

    spark = get_spark("local[2]", app_name="bench-scoring")
    rows = pd.read_csv(ROOT / "dataset" / "smart_home_device_usage_data.csv")[RECORD_COLUMNS]
    records = rows.to_dict("records")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        set_dir = train_set(spark, Path(tmp))
        start = time.perf_counter()
        model_set = ModelSet.load(set_dir)
        load_seconds = time.perf_counter() - start
        model = PipelineModel.load(str(set_dir / "efficiency"))
        frames = {n: spark.createDataFrame(rows.iloc[:n]).cache() for n in SIZES}
        for frame in frames.values():
            frame.count()
        scorer = model_set.efficiency
        figures = []
        for n in SIZES:
            batch, repeat = records[:n], max(20, 2000 // n)
            np_med, np_p99 = timed(lambda b=batch: scorer.predict(b), repeat)
            frame = frames[n]
            sp_med, sp_p99 = timed(lambda f=frame: model.transform(f).collect(), 10)
            figures.append((n, np_med, np_p99, sp_med, sp_p99))
        api = {}
        for name in ("predict_efficiency", "predict_malfunction", "segment"):
            method = getattr(model_set, name)
            for n in SIZES:
                batch = records[:n]
                api[name, n] = timed(lambda m=method, b=batch: m(b), max(20, 2000 // n))[0]
        algorithm = Manifest.read(set_dir / MANIFEST).models.efficiency.algorithm
    spark.stop()
    print(f"efficiency pipeline: {algorithm}; ModelSet.load {load_seconds:.3f} s\n")
    print("| records | numpy scorer median | p99 | Spark transform+collect median | p99 "
          "| speed-up |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for n, np_med, np_p99, sp_med, sp_p99 in figures:
        print(
            f"| {n:,} | {np_med * 1e3:.3f} ms | {np_p99 * 1e3:.3f} ms "
            f"| {sp_med * 1e3:.1f} ms | {sp_p99 * 1e3:.1f} ms | {sp_med / np_med:,.0f}x |"
        )
    print("\n| ModelSet (as the API calls it), median | " + " | ".join(
        f"{n:,} record{'s' if n > 1 else ''}" for n in SIZES) + " |")  # fmt: skip
    print("|---|" + "---:|" * len(SIZES))
    for name in ("predict_efficiency", "predict_malfunction", "segment"):
        cells = [f"{api[name, n] * 1e3:.3f} ms ({n / api[name, n]:,.0f} rows/s)" for n in SIZES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())
