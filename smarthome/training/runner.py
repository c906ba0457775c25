"""Running the planned sets: one run, a retrain that never shows a smaller set, or a watch.

One ``spark_training.py`` per model folder (a lock), and ``.tmp/`` leftovers of a killed run
removed before it starts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pyspark.sql import SparkSession

from smarthome.contracts import model_sets as registry
from smarthome.drift.reports import check_new_batches
from smarthome.errors import UserError
from smarthome.promotion.gate import (
    GateSettings,
    adopt_newest,
    after_retrain,
    current_champion,
    decide,
)
from smarthome.training.build import BuiltSet, build_set, log_print, publish_set
from smarthome.training.config import TrainConfig
from smarthome.training.planner import (
    NoBatchesError,
    PlannedSet,
    Selection,
    batch_files,
    describe,
    existing_sets,
    nothing_new,
    plan,
)

Log = Callable[[str], None]
#: called with each set right after it is published, before the gate decides on it (MLflow)
Published = Callable[[BuiltSet], None]


def clean_tmp(model_dir: Path) -> None:
    """Remove leftovers of a killed run (only call while holding the training lock)."""
    tmp = registry.tmp_dir(model_dir)
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def training_lock(model_dir: Path) -> Iterator[None]:
    """One training process per model dir (two would clean each other's ``.tmp``)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / registry.TRAINING_LOCK, "a+") as handle:
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


def train(
    spark: SparkSession,
    todo: list[PlannedSet],
    model_dir: Path,
    cfg: TrainConfig,
    *,
    min_rows: int = 50,
    retrain: bool = False,
    log: Log = log_print,
    gate: GateSettings | None = None,
    on_published: Published | None = None,
) -> list[Path]:
    """Build and publish the planned sets, oldest first; the published folders.

    With ``gate`` each published set is decided on at once (``smarthome.promotion.gate``):
    the champion pointer moves only to a set that passes (every set with ``--no-gate``).
    """
    if gate is not None:
        adopt_newest(model_dir, log)
    if retrain:
        published = _retrain(spark, todo, model_dir, cfg, min_rows, log, on_published)
        if gate is not None:
            after_retrain(published, model_dir, log)
        return published
    published = []
    for planned in todo:
        built = build_set(spark, planned, model_dir, cfg, min_rows, log)
        if built.path is None:
            continue
        published.append(built.path)
        if on_published is not None:
            on_published(built)
        if gate is not None and planned.files:
            decide(built.path, model_dir, planned.files[0].parent, gate, log)
    return published


def run_once(
    spark: SparkSession,
    batch_dir: Path,
    model_dir: Path,
    cfg: TrainConfig,
    *,
    min_rows: int = 50,
    retrain_all: bool = False,
    latest_only: bool = False,
    max_sets: int = 0,
    log: Log = log_print,
    quiet_when_idle: bool = False,
    gate: GateSettings | None = None,
    on_published: Published | None = None,
) -> list[Path]:
    """Plan and train the sets a run asks for; the published folders, oldest first.

    With ``gate``, every batch file is first checked for drift against the champion
    (``smarthome.drift``), then each published set goes through the gate."""
    selection = Selection(retrain_all, latest_only, max_sets)
    files = batch_files(batch_dir)
    if gate is not None:
        check_new_batches(
            files, model_dir, batch_dir, current_champion(model_dir), gate.thresholds, log
        )
    todo = plan(files, model_dir, selection, log)
    if not todo:
        if not quiet_when_idle:
            log(nothing_new(len(files), model_dir, selection))
        return []
    if (cost := describe(todo, len(files), selection)) is not None:
        log(cost)
    return train(
        spark,
        todo,
        model_dir,
        cfg,
        min_rows=min_rows,
        retrain=retrain_all,
        log=log,
        gate=gate,
        on_published=on_published,
    )


def _retrain(
    spark: SparkSession,
    todo: list[PlannedSet],
    model_dir: Path,
    cfg: TrainConfig,
    min_rows: int,
    log: Log,
    on_published: Published | None = None,
) -> list[Path]:
    """Build every set first, then publish newest first, then remove the replaced folders.

    Publishing set N before N-1..1 keeps the newest folder name a set N (old or new) all along,
    so a running API never falls back to a small set while retraining.
    """
    built = [build_set(spark, p, model_dir, cfg, min_rows, log, publish=False) for p in todo]
    built = [b for b in built if b.path is not None]
    published = [publish_set(b.path, model_dir) for b in reversed(built)][::-1]
    for folder in published:
        _retire_older(model_dir, folder)
    log(f"published {len(published)} retrained set(s); replaced the older ones")
    if on_published is not None:
        for done, folder in zip(built, published, strict=True):
            on_published(replace(done, path=folder))
    return published


def _retire_older(model_dir: Path, published: Path) -> None:
    """After --retrain-all: remove the older folders of the same set number."""
    number = registry.set_number(published)
    for folder, _ in existing_sets(model_dir).get(number, []):
        if folder != published:
            trash = registry.tmp_dir(model_dir) / f"retired-{folder.name}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)


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
    gate: GateSettings | None = None,
    on_published: Published | None = None,
) -> int:
    """Keep one SparkSession warm; train a set whenever a batch is published, until stopped.

    It sleeps ``poll_seconds`` only after a round that trained nothing."""
    log(f"watching {batch_dir} every {poll_seconds:g} s (Ctrl-C to stop)")
    first, waiting, count = True, False, 0
    while not stop():
        published = []
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
                gate=gate,
                on_published=on_published,
            )
            count += len(published)
            waiting = False
        except NoBatchesError as exc:
            if not waiting:
                log(f"waiting: {exc}")
            waiting = True
        first = False
        if published:
            continue  # batches may have arrived while it trained: plan again at once
        deadline = time.monotonic() + poll_seconds
        while time.monotonic() < deadline and not stop():
            time.sleep(min(0.2, poll_seconds))
    return count
