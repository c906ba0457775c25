"""Build one model set, step by step: read, split, fit, write, publish (DESIGN §6).

A set is built in ``<model_dir>/.tmp/<name>`` and ``os.replace``d into place when complete:
a reader never sees half a set, and a killed run leaves only a ``.tmp`` leftover that the
next run removes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smarthome.analysis.profile import profile_segments
from smarthome.contracts import model_sets as registry
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.records import EFFICIENCY_LABEL, MALFUNCTION_LABEL
from smarthome.errors import UserError
from smarthome.training import artefacts, pipelines
from smarthome.training.batches import Batches, read_batches
from smarthome.training.config import TrainConfig
from smarthome.training.export import export_pipeline
from smarthome.training.fit import train_clustering, train_efficiency, train_malfunction
from smarthome.training.planner import PlannedSet
from smarthome.training.set_parts import Fitted, Split
from smarthome.training.split import held_out, split
from smarthome.training.storage_check import check_complete

Log = Callable[[str], None]


def log_print(message: str) -> None:
    print(message, flush=True)


@dataclass
class BuiltSet:
    """What :func:`build_set` did: the set's folder and the seconds of each step."""

    path: Path | None  # published (or, unpublished, in ``.tmp/``); None: too few rows
    rows: int = 0
    #: step name -> seconds, in the order the steps ran, and "total"
    seconds: dict[str, float] = field(default_factory=dict)


def build_set(
    spark: SparkSession,
    planned: PlannedSet,
    model_dir: Path,
    cfg: TrainConfig,
    min_rows: int,
    outer_log: Log = log_print,
    publish: bool = True,
) -> BuiltSet:
    """Train, save and publish one set; its path is None when it has fewer than ``min_rows``
    rows. With ``publish=False`` the complete set stays in ``.tmp/``."""
    start = time.perf_counter()
    label = f"set {planned.number}"
    built = BuiltSet(path=None)
    step = StepClock(built.seconds)

    def log(message: str) -> None:
        outer_log(f"[{time.perf_counter() - start:5.1f}s] {label}: {message}")

    with sql_conf(spark, cfg.sql_conf):
        with step("read"):
            data = read_set(spark, planned, cfg, min_rows, log)
        if data is None:
            return built
        built.rows = data.rows
        with step("split"):
            rows = split_rows(data, cfg, label)
        log(f"{data.rows} rows ({rows.train_rows} train / {rows.test_rows} held out); training")
        tmp = fresh_tmp(model_dir, planned.number)
        with step("fit, evaluate, profile, save, export"):
            fitted = fit_models(rows, cfg, tmp)
        log(f"trained; {fitted.summary()}; profiled the segments, saved and exported the models")
        with step("manifest"):
            artefacts.write_set(
                tmp, planned, data, rows, fitted, cfg, spark, seconds=time.perf_counter() - start
            )
        rows.release()
        data.release()
    built.path = tmp
    if publish:
        with step("publish"):
            built.path = publish_set(tmp, model_dir)
    built.seconds["total"] = time.perf_counter() - start
    done = "published" if publish else "built (publishing later)"
    outer_log(
        f"{label} {done} {built.path.name}: rows {data.rows}, {fitted.summary()}, "
        f"{built.seconds['total']:.1f} s"
    )
    return built


class StepClock:
    """``with clock("step"):`` adds the block's seconds to ``seconds["step"]``."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def read_set(
    spark: SparkSession, planned: PlannedSet, cfg: TrainConfig, min_rows: int, log: Log
) -> Batches | None:
    """The set's rows (cached), bad rows reported per file; None below ``min_rows``."""
    log(f"reading {len(planned.files)} batch file(s)")
    data = read_batches(spark, planned.files, cfg.rows_per_partition)
    for name, count in data.skipped_by_file.items():
        log(f"{name}: {count} bad row(s) skipped (unparseable or out of schema)")
    if data.rows < min_rows:
        log(f"skipped, {data.rows} rows < --min-rows {min_rows}")
        data.release()
        return None
    return data


def split_rows(data: Batches, cfg: TrainConfig, label: str) -> Split:
    """Split by user (seeded hash); count both sides, the baselines and the device types in
    one job."""
    every_row = pipelines.model_input(data.df)
    flag = held_out(cfg.seed, cfg.test_percent)
    groups = (
        every_row.groupBy(flag.alias("held_out"), "DeviceType")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(EFFICIENCY_LABEL).alias("efficient"),
            F.sum(MALFUNCTION_LABEL).alias("malfunction"),
        )
        .collect()
    )
    train_groups = [g for g in groups if not g["held_out"]]
    train_rows = sum(g["rows"] for g in train_groups)
    test_rows = sum(g["rows"] for g in groups) - train_rows
    if not train_rows or not test_rows:
        raise UserError(f"{label}: {data.rows} rows leave an empty training or held-out split")
    train, test = split(every_row, cfg.seed, cfg.test_percent)
    return Split(
        train.cache(),
        test.cache(),
        every_row,
        train_rows,
        test_rows,
        # as avg() of the train split: a sum of whole numbers over a count
        majority=1 if sum(g["efficient"] for g in train_groups) / train_rows > 0.5 else 0,
        malfunction_mean=float(sum(g["malfunction"] for g in train_groups) / train_rows),
        train_device_types=pipelines.labels_by_frequency(
            {g["DeviceType"]: g["rows"] for g in train_groups}
        ),
    )


def fresh_tmp(model_dir: Path, number: int) -> Path:
    """An empty ``.tmp/<set name>`` to build the set in."""
    tmp = registry.tmp_dir(model_dir) / registry.set_name(number)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def fit_models(rows: Split, cfg: TrainConfig, tmp: Path) -> Fitted:
    """Fit the three models side by side, each saved and exported as soon as it is fitted.

    They are independent small jobs: together they keep both cores busy while the forest (the
    long one) fits.
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = {
            "efficiency": pool.submit(
                _fit_and_save_while_evaluating, tmp, "efficiency", train_efficiency,
                rows.train, rows.test, cfg, rows.majority, rows.test_rows,
                device_types=rows.train_device_types,
            ),
            "malfunction": pool.submit(
                _fit_and_save, tmp, "malfunction", train_malfunction,
                rows.train, rows.test, cfg, rows.malfunction_mean,
                device_types=rows.train_device_types,
            ),
            "clustering": pool.submit(
                _fit_and_save, tmp, "clustering", train_clustering, rows.every_row, cfg,
                count_sizes=False,
            ),
        }  # fmt: skip

        def profile() -> Clusters:
            model, section, _ = jobs["clustering"].result()
            return profile_segments(model, rows.every_row, section["k"])

        clusters = pool.submit(profile)
        fitted = {name: job.result() for name, job in jobs.items()}
        segments = clusters.result()
        # the profile counted every segment's rows: the sizes KMeans' summary would count
        fitted["clustering"][1]["cluster_sizes"] = [c.size for c in segments.clusters]
        fitted["clustering"][1]["metrics"]["efficient_share_spread"] = segments.efficiency_spread()
        return Fitted(
            models={name: model for name, (model, _, _) in fitted.items()},
            sections={name: section for name, (_, section, _) in fitted.items()},
            exports={name: exported for name, (_, _, exported) in fitted.items()},
            clusters=segments,
        )


def _fit_and_save(
    tmp: Path,
    name: str,
    train: Callable[..., tuple[Any, dict]],
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any], Any]:
    """(model, manifest section, scoring export) of ``train(*args, **kwargs)``, saved in
    ``tmp/name`` (:func:`save_and_export`)."""
    model, section = train(*args, **kwargs)
    return model, section, save_and_export(tmp, name, model)


def _fit_and_save_while_evaluating(
    tmp: Path,
    name: str,
    train: Callable[..., tuple[Any, dict]],
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any], Any]:
    """:func:`_fit_and_save` for the forest, the longest path: its save and export run while
    ``train`` computes the held-out metrics (``train`` hands over the model via ``fitted``)."""
    with ThreadPoolExecutor(max_workers=1) as saver:
        saving: list[Future] = []
        model, section = train(
            *args,
            fitted=lambda m: saving.append(saver.submit(save_and_export, tmp, name, m)),
            **kwargs,
        )
        return model, section, saving[0].result()


def save_and_export(tmp: Path, name: str, model: Any) -> Any:
    """Save ``model`` in ``tmp/name`` with Spark's writer; its scoring export, the forest's
    trees read from what was saved."""
    model.write().save(str(tmp / name))
    return export_pipeline(model, saved_at=tmp / name)


@contextmanager
def sql_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Spark SQL ``settings`` for the block, the session's own values restored after it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def publish_set(tmp: Path, model_dir: Path) -> Path:
    """Rename a complete set from ``.tmp/`` into place (atomic) and make that durable."""
    check_complete(tmp)  # executors on an unshared disk: parts missing, never publish
    for folder, _, names in os.walk(tmp):  # Spark's writers do not fsync
        for name in names:
            _fsync(Path(folder) / name)
    final = model_dir / tmp.name
    os.replace(tmp, final)
    _fsync(model_dir)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
