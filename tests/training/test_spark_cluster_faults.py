"""A Spark standalone cluster that fails a training run: a worker killed mid-training, a
worker that cannot see the shared folders. Each test makes a cluster of its own (it breaks
it), so this module runs beside the one that shares a cluster (``test_spark_cluster.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from tests.conftest import ROOT, require
from tests.helpers.spark_cluster import (
    SHARED_HINT,
    cluster_env,
    cmdline,
    error_lines,
    hide,
    new_cluster,
    submit,
    submit_args,
    wait_for,
)
from tests.helpers.training import assert_complete

pytestmark = [pytest.mark.spark, pytest.mark.slow]


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
