"""A private Spark standalone cluster for tests, and spark-submit against it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from smarthome.devtools.ports import free_port
from smarthome.devtools.spark import LocalSparkCluster
from smarthome.devtools.workspace import venv_env
from tests.conftest import ROOT, require
from tests.helpers.training import SPARK_SUBMIT

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


def wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"training exited with {proc.returncode} too early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def hide(*folders: Path) -> Callable[[int, list[str]], list[str]]:
    """Run worker 2 in its own mount namespace with an empty tmpfs over each of ``folders``."""

    def wrap(number: int, cmd: list[str]) -> list[str]:
        if number != 2:
            return cmd
        mounts = " && ".join(f'mount -t tmpfs none "{folder}"' for folder in folders)
        namespace = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
        return [*namespace, f'{mounts} && exec "$@"', "sh", *cmd]

    return wrap
