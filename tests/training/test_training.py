"""Cumulative training: which sets a run trains, atomic publishing, the efficiency model's quality.

Real local Spark. Behaviour that does not depend on model quality uses ``--quick`` (small
trees); the accuracy test uses the real configuration (the shared ``trained_model_dir``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.batches import write_batches
from smarthome.devtools.workspace import venv_env
from tests.conftest import ROOT, require
from tests.helpers.training import SPARK_SUBMIT, assert_complete, quick_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def manifest(folder: Path) -> dict:
    return json.loads((folder / registry.MANIFEST).read_text())


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python spark_training.py`` as the user would."""
    return subprocess.run(
        [sys.executable, "spark_training.py", *args],
        cwd=ROOT,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_sets_are_cumulative_and_only_missing_ones_are_trained(
    spark, dataset_batch_dir: Path, dataset_path: Path, tmp_path: Path
) -> None:
    from smarthome.training.runner import run_once

    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    shutil.copytree(dataset_batch_dir, batch_dir)
    files = sorted(p.name for p in batch_dir.iterdir())
    lines: list[str] = []

    published = run_once(spark, batch_dir, model_dir, quick_config(), log=lines.append)

    sets = registry.list_sets(model_dir)
    assert [registry.set_number(p) for p in sets] == [1, 2, 3, 4, 5, 6]
    assert published == sets
    for number, folder in enumerate(sets, start=1):
        m = manifest(folder)
        assert m["set"] == number
        assert m["batch_files"] == files[:number]
        assert_complete(folder)
    rows = [manifest(p)["rows"] for p in sets]
    assert rows == sorted(rows) and rows[-1] == 5403
    assert sum("published" in line for line in lines) == 6

    # a second run, as the user runs it: nothing new, says so, trains nothing
    again = cli("--batch-dir", str(batch_dir), "--model-dir", str(model_dir), "--quick")
    assert again.returncode == 0, again.stderr
    assert "nothing new to train" in again.stdout
    assert registry.list_sets(model_dir) == sets

    # one more batch file -> exactly one new set, trained on all 7 files
    write_batches(dataset_path, batch_dir, parts=10, start_offset=5403)
    for extra in sorted(batch_dir.iterdir())[7:]:
        extra.unlink()
    published = run_once(spark, batch_dir, model_dir, quick_config(), log=lines.append)
    assert len(published) == 1
    assert registry.list_sets(model_dir) == [*sets, published[0]]
    new = manifest(published[0])
    assert new["set"] == 7 and len(new["batch_files"]) == 7
    assert new["rows"] == 5403 + 541


def test_sigkill_during_training_leaves_no_set_and_next_run_publishes_it(
    spark, dataset_batch_dir: Path, tmp_path: Path
) -> None:
    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    batch_dir.mkdir()
    first = sorted(dataset_batch_dir.iterdir())[0]
    shutil.copy(first, batch_dir / first.name)
    args = ["--batch-dir", str(batch_dir), "--model-dir", str(model_dir), "--quick"]
    require(SPARK_SUBMIT.is_file(), "the pyspark-installed .venv/bin/spark-submit")
    proc = subprocess.Popen(
        [str(SPARK_SUBMIT), "--master", "local[2]", "spark_training.py", *args],
        cwd=ROOT,
        env=venv_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    tmp = registry.tmp_dir(model_dir)
    deadline = time.monotonic() + 240
    try:
        # kill while the set is being written: its folder exists only under .tmp/
        while not (tmp.is_dir() and any(tmp.iterdir())):
            assert proc.poll() is None, "training ended before it was killed"
            assert time.monotonic() < deadline, "training never started writing a set"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert registry.list_sets(model_dir) == []
    assert any(tmp.iterdir()), "the killed run's half-written set should be under .tmp/"

    # the next run (what main() does: lock, clean .tmp, train what is missing)
    from smarthome.training.runner import clean_tmp, run_once, training_lock

    lines: list[str] = []
    with training_lock(model_dir):
        clean_tmp(model_dir)
        run_once(spark, batch_dir, model_dir, quick_config(), log=lines.append)
    sets = registry.list_sets(model_dir)
    assert [registry.set_number(p) for p in sets] == [1]
    assert_complete(sets[0])
    assert not tmp.exists() or not any(tmp.iterdir()), "stale .tmp leftovers were not cleaned"
    assert any("published" in line for line in lines)


def test_efficiency_accuracy_and_manifest_figures_are_recomputable(
    spark, trained_model_dir: Path, dataset_batch_dir: Path
) -> None:
    from pyspark.ml import PipelineModel
    from pyspark.ml.evaluation import BinaryClassificationEvaluator, ClusteringEvaluator
    from pyspark.sql import functions as F

    from smarthome.training.batches import read_batches

    (folder,) = registry.list_sets(trained_model_dir)
    m = manifest(folder)
    assert m["rows"] == 5403 and m["rows_skipped"] == 0
    eff = m["models"]["efficiency"]
    assert eff["metrics"]["accuracy"] >= 0.955  # the bar for the full configuration
    assert m["config"]["rows_per_partition"] == 50_000
    assert eff["metrics"]["accuracy"] > eff["baseline"]["accuracy"]

    data = read_batches(spark, [dataset_batch_dir / n for n in m["batch_files"]]).df
    split = m["split"]
    held = F.pmod(F.xxhash64(F.col("UserID"), F.lit(split["seed"])), 100) < split["test_percent"]
    test, train = data.where(held), data.where(~held)
    assert (train.count(), test.count()) == (split["train_rows"], split["test_rows"])

    model = PipelineModel.load(str(folder / "efficiency"))
    scored = model.transform(test).cache()
    got = scored.select("SmartHomeEfficiency", "prediction").toPandas()
    accuracy = float((got["SmartHomeEfficiency"] == got["prediction"]).mean())
    assert accuracy == pytest.approx(eff["metrics"]["accuracy"], abs=1e-12)
    auc = BinaryClassificationEvaluator(
        labelCol="SmartHomeEfficiency", rawPredictionCol="probability"
    ).evaluate(scored)
    assert auc == pytest.approx(eff["metrics"]["roc_auc"], abs=1e-12)
    labels = test.select("SmartHomeEfficiency").toPandas()["SmartHomeEfficiency"]
    majority = train.groupBy("SmartHomeEfficiency").count().orderBy(F.desc("count")).first()[0]
    assert float((labels == majority).mean()) == pytest.approx(eff["baseline"]["accuracy"])

    mal = m["models"]["malfunction"]
    reg = PipelineModel.load(str(folder / "malfunction")).transform(test)
    pred = reg.select("MalfunctionIncidents", "prediction").toPandas()
    rmse = float(((pred["prediction"] - pred["MalfunctionIncidents"]) ** 2).mean() ** 0.5)
    assert rmse == pytest.approx(mal["metrics"]["rmse"], rel=1e-9)
    mean = train.agg(F.avg("MalfunctionIncidents")).first()[0]
    base = float(((mean - pred["MalfunctionIncidents"]) ** 2).mean() ** 0.5)
    assert base == pytest.approx(mal["baseline"]["rmse"], rel=1e-9)
    assert mal["metrics"]["rmse"] <= mal["baseline"]["rmse"] * (1 + 1e-9), "worse than mean"
    assert isinstance(mal["beats_baseline"], bool) and mal["note"]

    clustered = PipelineModel.load(str(folder / "clustering")).transform(data)
    silhouette = ClusteringEvaluator().evaluate(clustered)
    assert silhouette == pytest.approx(m["models"]["clustering"]["metrics"]["silhouette"])
    sizes = clustered.groupBy("prediction").count().toPandas()
    clusters = json.loads((folder / registry.CLUSTERS).read_text())
    assert {int(r.prediction): int(r["count"]) for _, r in sizes.iterrows()} == {
        c["id"]: c["size"] for c in clusters["clusters"] if c["size"]
    }


def test_a_sets_rows_are_read_into_one_partition_per_rows_per_partition(
    spark, dataset_batch_dir: Path
) -> None:
    """Fewer partitions than the reader made when the rows are few, never more; the same rows."""
    from smarthome.contracts.batch_files import list_batch_files
    from smarthome.training.batches import read_batches

    files = list_batch_files(dataset_batch_dir)
    as_read = read_batches(spark, files).df
    reader_partitions = as_read.rdd.getNumPartitions()
    assert reader_partitions > 1  # else the test below shows nothing
    rows = sorted(tuple(r) for r in as_read.collect())
    assert len(rows) == 5403
    for per_partition, partitions in ((50_000, 1), (2_000, 3), (1, reader_partitions)):
        df = read_batches(spark, files, rows_per_partition=per_partition).df
        assert df.rdd.getNumPartitions() == min(partitions, reader_partitions), per_partition
        assert sorted(tuple(r) for r in df.collect()) == rows, per_partition


def test_the_forest_is_binary_even_when_a_set_holds_one_class(
    spark, dataset_batch_dir: Path
) -> None:
    """The label's metadata says 0 or 1 (the record schema), so the forest needs no job to
    count the classes, and rows of one class still give a model scoring both classes."""
    from smarthome.contracts.batch_files import list_batch_files
    from smarthome.training import pipelines
    from smarthome.training.batches import read_batches
    from smarthome.training.config import QUICK_EFFICIENCY_PARAMS
    from smarthome.training.export import export_pipeline

    rows = pipelines.model_input(read_batches(spark, list_batch_files(dataset_batch_dir)).df)
    inefficient = rows.where("SmartHomeEfficiency = 0")
    for frame in (rows, inefficient):
        model = pipelines.efficiency_pipeline(42, **QUICK_EFFICIENCY_PARAMS).fit(frame)
        assert model.stages[-1].numClasses == 2
        assert export_pipeline(model).stages[-1].numClasses == 2
        probability = model.transform(frame.limit(1)).first()["probability"]
        assert len(probability) == 2
    # without the metadata Spark counts max(label) + 1 classes: one, a different model
    plain = inefficient.withMetadata("SmartHomeEfficiency", {})
    model = pipelines.efficiency_pipeline(42, **QUICK_EFFICIENCY_PARAMS).fit(plain)
    assert model.stages[-1].numClasses == 1


def test_watch_trains_a_set_per_published_batch_until_stopped(
    spark, dataset_batch_dir: Path, tmp_path: Path
) -> None:
    import threading

    from smarthome.training.runner import watch

    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    batch_dir.mkdir()
    first, second = sorted(dataset_batch_dir.iterdir())[:2]
    stop = threading.Event()
    lines: list[str] = []
    result: list[int] = []

    def run() -> None:
        result.append(
            watch(
                spark,
                batch_dir,
                model_dir,
                quick_config(),
                poll_seconds=0.2,
                log=lines.append,
                stop=stop.is_set,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def wait_for_sets(count: int) -> None:
        deadline = time.monotonic() + 180
        while len(registry.list_sets(model_dir)) < count:
            assert thread.is_alive(), lines
            assert time.monotonic() < deadline, lines
            time.sleep(0.1)

    try:
        time.sleep(0.5)
        assert any(line.startswith("waiting: no batch files") for line in lines), lines
        shutil.copy(first, batch_dir / first.name)
        wait_for_sets(1)
        shutil.copy(second, batch_dir / second.name)
        wait_for_sets(2)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not thread.is_alive() and result == [2]
    sets = registry.list_sets(model_dir)
    assert [manifest(p)["batch_files"] for p in sets] == [[first.name], [first.name, second.name]]
