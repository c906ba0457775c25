"""Training on a real Spark standalone cluster: a master and worker JVMs on 127.0.0.1.

Every cluster here is private (free ports, a temp dir) and its workers run outside the repo,
so an executor imports ``smarthome`` only because the driver ships it. Training uses
``--quick`` models: what is compared is the distributed run against local mode, not quality.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.ports import free_port
from smarthome.devtools.spark import LocalSparkCluster
from tests.conftest import ROOT, require
from tests.helpers.spark_cluster import (
    cluster_env,
    jvms_under,
    new_cluster,
    submit,
    submit_args,
    wait_for,
)
from tests.helpers.training import assert_complete, quick_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSparkCluster]:
    """One 2-worker x 1-core cluster shared by this module's tests that do not break it."""
    cluster = new_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


def test_spark_up_then_down_leaves_no_jvm_and_a_second_up_says_one_runs(tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for a Spark cluster")
    folder = tmp_path / "spark"
    port, ui_port = free_port(), free_port()
    flags = ["--dir", str(folder), "--port", str(port), "--ui-port", str(ui_port)]

    def cli(command: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "smarthome.devtools.spark", command, *flags, *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    up = cli("up", "--workers", "2")
    try:
        assert up.returncode == 0, up.stderr
        assert f"Spark is up at spark://127.0.0.1:{port}" in up.stdout
        master_pid = int((folder / "master.pid").read_text())
        worker_pids = [int((folder / f"worker-{n}.pid").read_text()) for n in (1, 2)]
        for pid in (master_pid, *worker_pids):
            assert "java" in psutil.Process(pid).name()
        listening = {
            c.laddr for c in psutil.Process(master_pid).net_connections() if c.status == "LISTEN"
        }
        assert {a.port for a in listening} == {port, ui_port}, "REST server (6066) must be off"
        assert {a.ip.removeprefix("::ffff:") for a in listening} == {"127.0.0.1"}

        again = cli("up", "--workers", "2")
        assert again.returncode == 0, again.stderr
        assert f"already running (pid {master_pid})" in again.stdout
        assert int((folder / "master.pid").read_text()) == master_pid
        status = cli("status")
        assert "2 worker(s) alive" in status.stdout, status.stdout
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert "Spark stopped (master, worker-1, worker-2)" in down.stdout
    assert not jvms_under(folder), "a JVM of the cluster survived spark-down"
    assert not list(folder.glob("*.pid"))
    assert "not running" in cli("status").stdout


def compare_sets(cluster_set: Path, local_set: Path, dataset_path: Path) -> None:
    """Same predictions on every dataset row; manifest metrics within 1e-9."""
    from smarthome.scoring.model_set import ModelSet

    rows = pd.read_csv(dataset_path).to_dict("records")
    ours, theirs = ModelSet.load(cluster_set), ModelSet.load(local_set)
    eff_a, eff_b = ours.predict_efficiency(rows), theirs.predict_efficiency(rows)
    assert [c for c, _ in eff_a] == [c for c, _ in eff_b]
    assert max(abs(p - q) for (_, p), (_, q) in zip(eff_a, eff_b, strict=True)) < 1e-9
    mal_a, mal_b = ours.predict_malfunction(rows), theirs.predict_malfunction(rows)
    assert max(abs(a - b) for a, b in zip(mal_a, mal_b, strict=True)) < 1e-9
    assert ours.segment(rows) == theirs.segment(rows)
    manifest_a = json.loads((cluster_set / registry.MANIFEST).read_text())
    manifest_b = json.loads((local_set / registry.MANIFEST).read_text())
    assert manifest_a["rows"] == manifest_b["rows"] == len(rows)
    assert manifest_a["split"] == manifest_b["split"]
    for model, section in manifest_b["models"].items():
        for metric, value in section["metrics"].items():
            got = manifest_a["models"][model]["metrics"][metric]
            assert abs(got - value) <= 1e-9, (model, metric, got, value)


@pytest.mark.timeout(1800)  # JVM-heavy; a loaded 2-core machine needs room
def test_two_worker_cluster_trains_the_same_set_as_local_mode(
    spark, spark_cluster: LocalSparkCluster, dataset_batch_dir: Path, dataset_path: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    from smarthome.training.runner import run_once

    for worker in spark_cluster.worker_daemons:  # so `smarthome` is not importable by luck
        assert ROOT not in Path(worker.process().cwd()).parents
    model_dir = tmp_path / "cluster-models"
    args = ["--batch-dir", str(dataset_batch_dir), "--model-dir", str(model_dir)]
    result = submit(spark_cluster.master_url, *args, "--latest-only", "--quick")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "storage check: 2 executor slot(s) see the driver's files" in result.stdout
    assert "published" in result.stdout
    for number in (1, 2):  # each worker ran an executor of this application
        work = spark_cluster.base_dir / f"worker-{number}" / "work"
        assert list(work.glob("app-*/*/stderr")), f"worker {number} ran no executor"
    (cluster_set,) = registry.list_sets(model_dir)
    assert_complete(cluster_set)
    assert not registry.tmp_dir(model_dir).exists() or not any(
        registry.tmp_dir(model_dir).iterdir()
    )

    local_dir = tmp_path / "local-models"
    (local_set,) = run_once(
        spark, dataset_batch_dir, local_dir, quick_config(), latest_only=True, log=lambda _: None
    )
    compare_sets(cluster_set, local_set, dataset_path)


@pytest.mark.timeout(1800)  # JVM-heavy; a loaded 2-core machine needs room
def test_watch_on_the_cluster_trains_each_new_batch_until_ctrl_c(
    spark_cluster: LocalSparkCluster, dataset_batch_dir: Path, tmp_path: Path
) -> None:
    batch_dir, model_dir, log = tmp_path / "batches", tmp_path / "models", tmp_path / "out.log"
    batch_dir.mkdir()
    files = sorted(dataset_batch_dir.iterdir())
    shutil.copy(files[0], batch_dir / files[0].name)
    args = ["--batch-dir", str(batch_dir), "--model-dir", str(model_dir), "--quick"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            submit_args(spark_cluster.master_url, *args, "--watch", "--poll-seconds", "1"),
            cwd=ROOT,
            env=cluster_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: len(registry.list_sets(model_dir)) == 1, 600, proc)
        shutil.copy(files[1], batch_dir / files[1].name)
        wait_for(lambda: len(registry.list_sets(model_dir)) == 2, 600, proc)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: spark-submit's JVM gets it too (130)
        assert proc.wait(timeout=120) in (0, 130), log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    text = log.read_text()
    assert "storage check: 2 executor slot(s)" in text
    assert "stopped watching" in text
    assert "Traceback" not in text
    for number, folder in enumerate(registry.list_sets(model_dir), start=1):
        assert_complete(folder)
        manifest = json.loads((folder / registry.MANIFEST).read_text())
        assert manifest["set"] == number and len(manifest["batch_files"]) == number
