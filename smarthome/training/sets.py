"""Cumulative model sets (DESIGN §6): plan which sets are missing, build, publish atomically.

Set N is trained on the first N batch files in file-name (publish) order; its manifest lists
them, so a run knows which sets exist. A set is built in ``<model_dir>/.tmp/<name>`` and
``os.replace``d into place when complete: a reader never sees half a set, and a killed run
leaves only a ``.tmp`` leftover that the next run removes.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smarthome import __version__
from smarthome.analysis.profile import profile_segments
from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import list_batch_files
from smarthome.contracts.records import EFFICIENCY_LABEL, MALFUNCTION_LABEL
from smarthome.errors import UserError
from smarthome.training.batches import read_batches
from smarthome.training.models import (
    TrainConfig,
    split,
    train_clustering,
    train_efficiency,
    train_malfunction,
)
from smarthome.training.storage_check import check_complete

Log = Callable[[str], None]
LOCK = registry.TRAINING_LOCK
CONSUMER_HINT = "run `python kafka_consumer_batch.py` to write batch files"


def nothing_new(files: list[Path], model_dir: Path) -> str:
    return f"nothing new to train: {len(files)} batch file(s), every set exists in {model_dir}"


def log_print(message: str) -> None:
    print(message, flush=True)


class NoBatchesError(UserError):
    """No batch folder or no batch file in it (``--watch`` waits instead of failing)."""


@dataclass(frozen=True)
class PlannedSet:
    number: int
    files: list[Path]


def batch_files(batch_dir: Path) -> list[Path]:
    """The published batch files, or UserError naming the folder and how to get some."""
    if not batch_dir.is_dir():
        raise NoBatchesError(f"batch folder {batch_dir} does not exist; {CONSUMER_HINT}")
    files = list_batch_files(batch_dir)
    if not files:
        raise NoBatchesError(f"no batch files in {batch_dir}; {CONSUMER_HINT}")
    return files


def existing_sets(model_dir: Path) -> dict[int, list[tuple[Path, list[str]]]]:
    """Set number -> [(folder, batch file names in its manifest)] of every published set."""
    out: dict[int, list[tuple[Path, list[str]]]] = {}
    for folder in registry.list_sets(model_dir):
        try:
            manifest = json.loads((folder / registry.MANIFEST).read_text(encoding="utf-8"))
            used = list(manifest.get("batch_files", []))
        except (OSError, ValueError, AttributeError):
            used = []
        out.setdefault(registry.set_number(folder), []).append((folder, used))
    return out


def plan(
    files: list[Path], model_dir: Path, retrain_all: bool, latest_only: bool, log: Log
) -> list[PlannedSet]:
    """The sets to train: set N <-> the first N files; only missing ones unless retrain_all."""
    names = [p.name for p in files]
    have = existing_sets(model_dir)
    numbers = [len(files)] if latest_only else range(1, len(files) + 1)
    todo = []
    for number in numbers:
        found = have.get(number, [])
        if retrain_all or not found:
            todo.append(PlannedSet(number, files[:number]))
        elif not any(used == names[:number] for _, used in found):
            log(
                f"note: set {number} ({found[-1][0].name}) was trained on other batch files "
                "than the current first ones; --retrain-all retrains it"
            )
    return todo


def clean_tmp(model_dir: Path) -> None:
    """Remove leftovers of a killed run (only call while holding the training lock)."""
    tmp = registry.tmp_dir(model_dir)
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def training_lock(model_dir: Path) -> Iterator[None]:
    """One training process per model dir (two would clean each other's ``.tmp``)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another spark_training.py is training into {model_dir}; wait for it or stop it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def versions(spark: SparkSession) -> dict[str, str]:
    import numpy
    import pandas
    import pyspark

    return {
        "spark": spark.version,
        "pyspark": pyspark.__version__,
        "python": platform.python_version(),
        "java": spark.sparkContext._jvm.System.getProperty("java.version"),  # type: ignore[union-attr]
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "smarthome": __version__,
    }


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _scoring(models: dict[str, Any]) -> dict[str, Any]:
    from smarthome.training.export import export_pipeline

    return {"format": 1, **{name: export_pipeline(m) for name, m in models.items()}}


def _fitted(
    save_to: Path | None, name: str, train: Callable[..., tuple[Any, dict]], *args: Any
) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """(model, manifest section, scoring export) of ``train(*args)``; saved into
    ``save_to/name`` and exported right away unless ``save_to`` is None."""
    model, section = train(*args)
    if save_to is None:
        return model, section, None
    from smarthome.training.export import export_pipeline

    model.save(str(save_to / name))
    return model, section, export_pipeline(model)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_set(
    spark: SparkSession,
    planned: PlannedSet,
    model_dir: Path,
    cfg: TrainConfig,
    min_rows: int,
    outer_log: Log = log_print,
    publish: bool = True,
) -> Path | None:
    """Train, save and publish one set; None when it has fewer than ``min_rows`` rows.

    With ``publish=False`` the complete set stays in ``.tmp/`` and its path there is returned.
    """
    with sql_conf(spark, cfg.sql_conf):
        return _build_set(spark, planned, model_dir, cfg, min_rows, outer_log, publish)


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


def _build_set(
    spark: SparkSession,
    planned: PlannedSet,
    model_dir: Path,
    cfg: TrainConfig,
    min_rows: int,
    outer_log: Log,
    publish: bool,
) -> Path | None:
    start = time.perf_counter()
    label = f"set {planned.number}"

    def log(message: str) -> None:
        outer_log(f"[{time.perf_counter() - start:5.1f}s] {message}")

    log(f"{label}: reading {len(planned.files)} batch file(s)")
    data = read_batches(spark, planned.files)
    for name, count in data.skipped_by_file.items():
        log(f"{label}: {name}: {count} bad row(s) skipped (unparseable or out of schema)")
    if data.rows < min_rows:
        log(f"{label}: skipped, {data.rows} rows < --min-rows {min_rows}")
        data.df.unpersist()
        return None
    train, test = split(data.df, cfg.seed, cfg.test_percent)
    train, test = train.cache(), test.cache()
    stats = train.agg(
        F.count(F.lit(1)).alias("rows"),
        F.avg(EFFICIENCY_LABEL).alias("efficient"),
        F.avg(MALFUNCTION_LABEL).alias("malfunction"),
    ).first()
    train_rows, test_rows = int(stats["rows"]), test.count()
    if not train_rows or not test_rows:
        raise UserError(f"{label}: {data.rows} rows leave an empty training or held-out split")
    log(f"{label}: {data.rows} rows ({train_rows} train / {test_rows} held out); training")
    majority = 1 if stats["efficient"] > 0.5 else 0
    name = registry.set_name(planned.number)
    tmp = registry.tmp_dir(model_dir) / name
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    # the three models are independent small jobs: side by side they keep both cores busy, and
    # each is saved and exported as soon as it is fitted, while the forest (the long one) fits
    save_to = None if cfg.legacy_speed else tmp
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = {
            "efficiency": pool.submit(
                _fitted, save_to, "efficiency", train_efficiency, train, test, cfg, majority
            ),
            "malfunction": pool.submit(
                _fitted, save_to, "malfunction", train_malfunction, train, test, cfg,
                float(stats["malfunction"]),
            ),
            "clustering": pool.submit(
                _fitted, save_to, "clustering", train_clustering, data.df, cfg
            ),
        }  # fmt: skip
        if not cfg.legacy_speed:
            clusters_job = pool.submit(
                lambda: profile_segments(jobs["clustering"].result()[0], data.df, cfg.k)
            )
        fitted = {n: job.result() for n, job in jobs.items()}
    models = {n: model for n, (model, _, _) in fitted.items()}
    eff_section, mal_section, km_section = (section for _, section, _ in fitted.values())
    log(
        f"{label}: trained; efficiency accuracy {eff_section['metrics']['accuracy']:.4f}, "
        f"malfunction RMSE {mal_section['metrics']['rmse']:.4f}, "
        f"clustering silhouette {km_section['metrics']['silhouette']:.4f}"
    )
    if cfg.legacy_speed:  # the settings before issue 14: profile, save, export one after another
        clusters = profile_segments(models["clustering"], data.df, cfg.k)
        with ThreadPoolExecutor(max_workers=3) as pool:
            for save in [pool.submit(m.save, str(tmp / n)) for n, m in models.items()]:
                save.result()
        scoring = _scoring(models)
    else:
        clusters = clusters_job.result()
        scoring = {"format": 1, **{n: exported for n, (_, _, exported) in fitted.items()}}
    log(f"{label}: profiled the segments, saved and exported the models")
    _write_json(tmp / registry.SCORING, scoring)
    _write_json(tmp / registry.CLUSTERS, clusters)
    seconds = time.perf_counter() - start
    manifest = {
        "format": 1,
        "set": planned.number,
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "batch_files": [p.name for p in planned.files],
        "rows": data.rows,
        "rows_skipped": data.rows_skipped,
        "rows_skipped_by_file": data.skipped_by_file,
        "split": {
            "method": "held out iff pmod(xxhash64(UserID, seed), 100) < test_percent",
            "seed": cfg.seed,
            "test_percent": cfg.test_percent,
            "train_rows": train_rows,
            "test_rows": test_rows,
        },
        "config": asdict(cfg),
        "versions": versions(spark),
        "seconds": round(seconds, 3),
        "models": {"efficiency": eff_section, "malfunction": mal_section, "clustering": km_section},
    }
    _write_json(tmp / registry.MANIFEST, manifest)
    for frame in (train, test, data.df):
        frame.unpersist()
    final = model_dir / name
    if not publish:
        outer_log(f"{label} built {name} ({time.perf_counter() - start:.1f} s); publishing later")
        return tmp
    publish_set(tmp, model_dir)
    outer_log(
        f"{label} published {name}: rows {data.rows}, accuracy "
        f"{eff_section['metrics']['accuracy']:.4f}, RMSE {mal_section['metrics']['rmse']:.4f}, "
        f"silhouette {km_section['metrics']['silhouette']:.4f}, "
        f"{time.perf_counter() - start:.1f} s"
    )
    return final


def publish_set(tmp: Path, model_dir: Path) -> Path:
    """Rename a complete set from ``.tmp/`` into place (atomic) and make that durable."""
    check_complete(tmp)  # executors on an unshared disk: parts missing, never publish
    for folder, _, names in os.walk(tmp):  # Spark's writers do not fsync
        for name in names:
            fd = os.open(Path(folder) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    final = model_dir / tmp.name
    os.replace(tmp, final)
    _fsync_dir(model_dir)
    return final


def _retire_older(model_dir: Path, published: Path) -> None:
    """After --retrain-all: remove the older folders of the same set number."""
    number = registry.set_number(published)
    for folder, _ in existing_sets(model_dir).get(number, []):
        if folder != published:
            trash = registry.tmp_dir(model_dir) / f"retired-{folder.name}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)


def run_once(
    spark: SparkSession,
    batch_dir: Path,
    model_dir: Path,
    cfg: TrainConfig,
    *,
    min_rows: int = 50,
    retrain_all: bool = False,
    latest_only: bool = False,
    log: Log = log_print,
    quiet_when_idle: bool = False,
) -> list[Path]:
    """Train every missing set (or the latest/all); the published folders, oldest first."""
    files = batch_files(batch_dir)
    todo = plan(files, model_dir, retrain_all, latest_only, log)
    if not todo:
        if not quiet_when_idle:
            log(nothing_new(files, model_dir))
        return []
    if retrain_all:
        return _retrain(spark, todo, model_dir, cfg, min_rows, log)
    published = []
    for planned in todo:
        folder = build_set(spark, planned, model_dir, cfg, min_rows, log)
        if folder is not None:
            published.append(folder)
    return published


def _retrain(
    spark: SparkSession,
    todo: list[PlannedSet],
    model_dir: Path,
    cfg: TrainConfig,
    min_rows: int,
    log: Log,
) -> list[Path]:
    """Build every set first, then publish newest first, then remove the replaced folders.

    Publishing set N before N-1..1 keeps the newest folder name a set N (old or new) all along,
    so a running API never falls back to a small set while retraining.
    """
    built = [b for p in todo if (b := build_set(spark, p, model_dir, cfg, min_rows, log, False))]
    published = [publish_set(tmp, model_dir) for tmp in reversed(built)][::-1]
    for folder in published:
        _retire_older(model_dir, folder)
    log(f"published {len(published)} retrained set(s); replaced the older ones")
    return published


def watch(
    spark: SparkSession,
    batch_dir: Path,
    model_dir: Path,
    cfg: TrainConfig,
    *,
    poll_seconds: float = 5.0,
    min_rows: int = 50,
    latest_only: bool = False,
    log: Log = log_print,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Keep one SparkSession warm; train a set whenever a batch is published, until stopped."""
    log(f"watching {batch_dir} every {poll_seconds:g} s (Ctrl-C to stop)")
    first, waiting, count = True, False, 0
    while not stop():
        try:
            published = run_once(
                spark,
                batch_dir,
                model_dir,
                cfg,
                min_rows=min_rows,
                latest_only=latest_only,
                log=log,
                quiet_when_idle=not first,
            )
            count += len(published)
            waiting = False
        except NoBatchesError as exc:
            if not waiting:
                log(f"waiting: {exc}")
            waiting = True
        first = False
        deadline = time.monotonic() + poll_seconds
        while time.monotonic() < deadline and not stop():
            time.sleep(min(0.2, poll_seconds))
    return count
