"""Every stage script and every benchmark answers ``--help`` with its usage, and does nothing else.

Each runs as a user runs it, in a subprocess, with its settings pointed at an empty private
folder and a broker address nothing listens on: a script that started its work instead would
print more, or leave a file, a temporary folder or a child process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in ROOT.glob("*.py"))
#: ``python -m bench`` and every module of bench/ that runs as a program
BENCHMARKS = ["bench"] + sorted(
    f"bench.{p.stem}"
    for p in (ROOT / "bench").glob("*.py")
    if p.stem != "__main__" and '__name__ == "__main__"' in p.read_text(encoding="utf-8")
)


def test_the_lists_hold_every_stage_and_benchmark() -> None:
    assert {"kafka_producer.py", "kafka_consumer_batch.py", "app_api.py"} <= set(SCRIPTS)
    assert {"bench", "bench.bench_scale", "bench.bench_training"} <= set(BENCHMARKS)


@pytest.mark.parametrize(
    "command", [[name] for name in SCRIPTS] + [["-m", name] for name in BENCHMARKS], ids=str
)
def test_help_prints_usage_and_runs_nothing(command: list[str], tmp_path: Path) -> None:
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # discard port: never a broker
        "BATCH_DIR": str(work / "batches"),
        "MODEL_DIR": str(work / "models"),
        "API_URL": "http://127.0.0.1:9",
    }
    proc = subprocess.Popen(
        [sys.executable, *command, "--help"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # it started the real work: stop all of it
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(command)} --help did not return: it started its work")
    assert proc.returncode == 0, out + err
    assert out.startswith("usage: "), out + err
    assert "--help" in out
    assert err == ""
    assert not work.exists(), "--help wrote the batch or model folder"
    assert not any(tmp.iterdir()), f"--help left temporary files: {list(tmp.iterdir())}"
    assert not _still_running(tmp), "--help left a process running"


def _still_running(tmp: Path) -> list[psutil.Process]:
    """Processes started under this test's TMPDIR (children inherit it), still running."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("TMPDIR") == str(tmp):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found
