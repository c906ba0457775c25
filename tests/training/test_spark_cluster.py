"""Training on a real Spark standalone cluster: a master and worker JVMs on 127.0.0.1.

Every cluster here is private (free ports, a temp dir) and its workers run outside the repo,
so an executor imports ``smarthome`` only because the driver ships it. Training uses
``--quick`` models: what is compared is the distributed run against local mode, not quality.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.ports import free_port
from smarthome.devtools.spark import LocalSparkCluster
from smarthome.devtools.workspace import venv_env
from tests.conftest import ROOT, require
from tests.helpers.training import SPARK_SUBMIT, assert_complete, quick_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]
SHARED_HINT = "must be on storage every node shares"


def new_cluster(
    base: Path, workers: int = 2, wrap: Callable[[int, list[str]], list[str]] | None = None
) -> LocalSparkCluster:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for a Spark cluster")
    cluster = LocalSparkCluster(
        base / "spark",
        workers=workers,
        port=free_port(),
        ui_port=free_port(),
        worker_memory="1g",
        die_with_parent=True,
        worker_wrap=wrap,
    )
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSparkCluster]:
    """One 2-worker x 1-core cluster shared by this module's tests that do not break it."""
    cluster = new_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


def submit_args(master: str, *args: str) -> list[str]:
    require(SPARK_SUBMIT.is_file(), "the pyspark-installed .venv/bin/spark-submit")
    return [str(SPARK_SUBMIT), "--master", master, "spark_training.py", *args]


def cluster_env() -> dict[str, str]:
    return {**venv_env(), "SPARK_LOCAL_IP": "127.0.0.1"}  # the driver binds 127.0.0.1 too


def submit(master: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        submit_args(master, *args),
        cwd=ROOT,
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(output: str) -> list[str]:
    """Our one-line errors: spark-submit merges the script's stderr into its stdout."""
    return re.findall(r"spark_training\.py: error: .*", output)


def cmdline(proc: psutil.Process) -> str:
    """A process's command line; "" for a zombie (a worker's reaped-late launcher child)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def jvms_under(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line or cwd is inside ``folder`` (ours, by construction)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(folder) in text and proc.pid != os.getpid():
            found.append(proc)
    return found


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


def wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"training exited with {proc.returncode} too early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


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


@pytest.mark.timeout(1800)  # JVM-heavy; a loaded 2-core machine needs room
def test_a_worker_killed_mid_training_never_leaves_a_half_set(
    dataset_batch_dir: Path, tmp_path: Path
) -> None:
    cluster = new_cluster(tmp_path)
    try:
        model_dir, log = tmp_path / "models", tmp_path / "out.log"
        args = ["--batch-dir", str(dataset_batch_dir), "--model-dir", str(model_dir), "--quick"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                submit_args(cluster.master_url, *args, "--latest-only"),
                cwd=ROOT,
                env=cluster_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # kill worker 2 (and its executor, as a dying machine would) while models are fit
            wait_for(lambda: "held out); training" in log.read_text(), 600, proc)
            worker = cluster.worker_daemons[1].process()
            assert worker is not None
            family = [*worker.children(recursive=True), worker]
            assert any("Executor" in cmdline(p) for p in family[:-1])
            for member in family:
                member.kill()
            seen_sets: set[Path] = set()
            while proc.poll() is None:  # every set a reader can list is whole, all along
                for folder in registry.list_sets(model_dir):
                    if folder not in seen_sets:
                        assert_complete(folder)
                        seen_sets.add(folder)
                time.sleep(0.2)
            code = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        text = log.read_text()
        if code != 0:  # allowed: one clear line, nothing published; the next run publishes
            assert len(error_lines(text)) == 1, text[-3000:]
            assert registry.list_sets(model_dir) == []
            again = submit(cluster.master_url, *args, "--latest-only")
            assert again.returncode == 0, again.stderr[-3000:]
        (folder,) = registry.list_sets(model_dir)
        assert_complete(folder)
        manifest = json.loads((folder / registry.MANIFEST).read_text())
        assert manifest["rows"] == 5403
    finally:
        cluster.stop()


def hide(*folders: Path) -> Callable[[int, list[str]], list[str]]:
    """Run worker 2 in its own mount namespace with an empty tmpfs over each of ``folders``."""

    def wrap(number: int, cmd: list[str]) -> list[str]:
        if number != 2:
            return cmd
        mounts = " && ".join(f'mount -t tmpfs none "{folder}"' for folder in folders)
        namespace = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
        return [*namespace, f'{mounts} && exec "$@"', "sh", *cmd]

    return wrap


def test_storage_check_stops_a_run_whose_executors_do_not_see_the_folders(
    dataset_batch_dir: Path, tmp_path: Path
) -> None:
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "root and unshare(1)")
    # worker 2 sees neither the hidden batch folder nor the hidden model folder; each run
    # hides one of them, the other folder being one every worker sees
    hidden_batches, hidden_models = tmp_path / "hidden-batches", tmp_path / "hidden-models"
    shared_batches, shared_models = tmp_path / "batches", tmp_path / "models"
    for folder in (hidden_batches, shared_batches):
        shutil.copytree(dataset_batch_dir, folder)
    for folder in (hidden_models, shared_models):
        folder.mkdir()
    cluster = new_cluster(tmp_path, wrap=hide(hidden_batches, hidden_models))
    runs = {
        "batch files differ or are missing": (hidden_batches, shared_models),
        "marker": (shared_batches, hidden_models),
    }
    try:
        for expected, (batch_dir, model_dir) in runs.items():
            result = submit(
                cluster.master_url,
                "--batch-dir",
                str(batch_dir),
                "--model-dir",
                str(model_dir),
                "--latest-only",
                "--quick",
            )
            assert result.returncode != 0
            lines = error_lines(result.stdout)
            assert len(lines) == 1, result.stdout[-3000:]
            assert SHARED_HINT in lines[0] and expected in lines[0], lines[0]
            assert "Traceback" not in result.stdout + result.stderr
            assert "published" not in result.stdout
            assert registry.list_sets(model_dir) == []
            tmp = registry.tmp_dir(model_dir)
            assert not (tmp.exists() and any(tmp.iterdir()))
    finally:
        cluster.stop()
