"""Do the executors see the driver's batch files and model folder? Checked before a cluster run.

The driver lists the batch files and, at the end, renames a finished set into place; the
executors read the batches and write the model files. On machines that do not share a disk
the executors would read nothing or write where the driver never looks, and the rename would
publish a set with missing parts. So before training on a non-local master one small job runs
a task in every executor slot at once (a barrier stage, so every executor gets one): each task
checks that it sees the driver's batch files (names and sizes) and a marker file the driver
wrote under ``<model_dir>/.tmp/``, and leaves a reply there that the driver must then see.
:func:`check_complete` is the second guard, just before a set is published.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from functools import partial
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import list_batch_files
from smarthome.errors import UserError
from smarthome.training.spark import is_local

SHARED = (
    "batched_data/ and spark_models/ must be on storage every node shares"
    " (an NFS mount or the same path everywhere)"
)
MARKER = "marker"


def check_shared_storage(
    spark: SparkSession,
    batch_dir: Path,
    model_dir: Path,
    *,
    timeout: float = 120.0,
    settle: float = 5.0,
) -> int | None:
    """Raise UserError unless every executor sees the driver's files; tasks run, None if local.

    Waits for the executors first: for ``spark.cores.max`` (or ``spark.executor.instances`` x
    cores) slots when set, else until no executor has joined for ``settle`` seconds.
    """
    sc = spark.sparkContext
    if is_local(sc.master):
        return None  # executors are threads of the driver: same files by construction
    slots = wait_for_executors(sc, timeout, settle)
    batch_dir, model_dir = batch_dir.resolve(), model_dir.resolve()
    token = uuid.uuid4().hex
    probe = registry.tmp_dir(model_dir) / f"storage-check-{token}"
    probe.mkdir(parents=True)
    (probe / MARKER).write_text(token, encoding="utf-8")
    expected = {p.name: p.stat().st_size for p in list_batch_files(batch_dir)}
    task = partial(_probe, str(batch_dir), expected, str(probe), token)
    try:
        rdd = sc.parallelize(range(slots), slots)
        dynamic = sc.getConf().get("spark.dynamicAllocation.enabled", "false") == "true"
        runs = (rdd if dynamic else rdd.barrier()).mapPartitions(task)  # no barrier with dynamic
        try:
            results = runs.collect()
        except Exception as exc:  # a Py4JJavaError's first line names the executor's error
            first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
            raise UserError(f"the storage check job failed on the executors: {first[0]}") from None
        problems = [f"{where}: {problem}" for where, problem in results if problem]
        replies = {p.name for p in probe.iterdir()} - {MARKER}
        if not problems and len(replies) < len(results):
            problems = [
                f"the driver sees {len(replies)} of {len(results)} files the executors wrote"
                f" into {probe.parent}"
            ]
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"executors do not see the driver's files: {problems[0]}{more}; {SHARED}")
    return len(results)


def expected_slots(sc: SparkContext) -> int:
    """Task slots the run asked for (``spark.cores.max``, or executors x cores); 0 = unknown."""
    conf = sc.getConf()
    per_task = int(conf.get("spark.task.cpus", "1"))
    if conf.get("spark.cores.max"):
        return int(conf.get("spark.cores.max")) // per_task
    if conf.get("spark.executor.instances") and conf.get("spark.executor.cores"):
        cores = int(conf.get("spark.executor.instances")) * int(conf.get("spark.executor.cores"))
        return cores // per_task
    return 0


def wait_for_executors(sc: SparkContext, timeout: float, settle: float) -> int:
    """The task slots of the registered executors, once they stop changing."""
    jsc = sc._jsc.sc()  # type: ignore[union-attr]
    profile = jsc.resourceProfileManager().defaultResourceProfile()
    expected = expected_slots(sc)
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        slots = int(jsc.maxNumConcurrentTasks(profile))
        now = time.monotonic()
        if slots != last:
            last, since = slots, now
        if slots and (slots >= expected if expected else now - since >= settle):
            return slots
        if now > deadline:
            if slots:
                return slots  # fewer than asked for: check the ones there are
            raise UserError(
                f"no Spark executor registered with {sc.master} within {timeout:.0f} s;"
                " is a worker running (`make spark-up`) with enough free cores and memory?"
            )
        time.sleep(0.2)


def _probe(
    batch_dir: str, expected: dict[str, int], probe: str, token: str, partitions: object
) -> list[tuple[str, str]]:
    """Executor side: what this task sees of the driver's files ("" = all as expected)."""
    where = f"{socket.gethostname()} (pid {os.getpid()})"
    try:
        seen = {
            name: os.path.getsize(os.path.join(batch_dir, name))
            for name in os.listdir(batch_dir)
            if name in expected
        }
    except OSError:
        seen = None
    if seen is None and expected:
        return [(where, f"cannot list batch folder {batch_dir}")]
    missing = [name for name, size in expected.items() if seen.get(name) != size]
    if missing:
        return [(where, f"{len(missing)} of {len(expected)} batch files differ or are missing")]
    try:
        with open(os.path.join(probe, MARKER), encoding="utf-8") as handle:
            if handle.read() != token:
                return [(where, f"{probe}/{MARKER} has other contents")]
        reply = os.path.join(probe, f"seen-{uuid.uuid4().hex}")
        with open(reply, "w", encoding="utf-8") as handle:
            handle.write(where)
    except OSError:
        return [(where, f"cannot read the driver's marker {probe}/{MARKER}")]
    return [(where, "")]


def check_complete(folder: Path) -> None:
    """Raise UserError unless every Spark output dir in a built set holds its part files.

    The driver commits a Spark write (``_SUCCESS``) even when the executors wrote their parts
    on another disk: a dir with ``_SUCCESS`` and no ``part-*`` file is a set with missing parts.
    """
    for path, dirs, names in os.walk(folder):
        if "_temporary" in dirs or (names and "_SUCCESS" in names and not _has_part(names)):
            where = Path(path).relative_to(folder)
            raise UserError(
                f"set {folder.name} is incomplete ({where} has no part files the executors"
                f" wrote); not published; {SHARED}"
            )


def _has_part(names: list[str]) -> bool:
    return any(name.startswith("part-") for name in names)
