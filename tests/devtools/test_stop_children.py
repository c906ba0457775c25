"""Nothing a benchmark starts outlives it: SIGTERM (as `timeout` sends) or Ctrl-C stops its
children too, even those in sessions of their own (a broker) that no signal to it reaches."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def _started_under(tmp: Path) -> list[psutil.Process]:
    """Live processes whose TMPDIR is ``tmp``: what the program under test started."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get("TMPDIR") == str(
                tmp
            ):
                found.append(process)
    return found


def _start(command: list[str], tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(tmp)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the test's own signals reach only what it means to
        )


def _wait_for_child(proc: subprocess.Popen[bytes], marker: str, log: Path) -> psutil.Process:
    """The descendant whose command line contains ``marker``, once it runs."""
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, f"exited {proc.returncode}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no {marker} child: {log.read_text()[-2000:]}"
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                if any(marker in part for part in child.cmdline()):
                    return child
        time.sleep(0.1)


def _kill_what_is_left(tmp: Path) -> None:
    for process in _started_under(tmp):
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.mark.kafka
def test_sigterm_to_a_benchmark_stops_its_broker(tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for the benchmark's broker")
    tmp, log = tmp_path / "tmp", tmp_path / "bench.log"
    tmp.mkdir()
    # bench_consumer's first child is its broker, a JVM in a session of its own
    proc = _start([sys.executable, "-m", "bench.bench_consumer"], tmp, log)
    try:
        broker = _wait_for_child(proc, "kafka.Kafka", log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()[-2000:]
        assert not broker.is_running() or broker.status() == psutil.STATUS_ZOMBIE
        assert not _started_under(tmp), "a process the benchmark started is still running"
        assert not any(tmp.iterdir()), "the benchmark's temporary folder was not removed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_what_is_left(tmp)
        proc.wait()


PROGRAM = textwrap.dedent(
    """
    import subprocess, sys, time
    from smarthome.devtools.processes import stop_children_at_exit

    stop_children_at_exit()
    # a child in a session of its own, like a daemon: the terminal's Ctrl-C never reaches it
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "child"],
                     start_new_session=True)
    try:
        time.sleep(600)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_to_a_program_stops_its_children_in_other_sessions(
    sig: signal.Signals, tmp_path: Path
) -> None:
    tmp, log = tmp_path / "tmp", tmp_path / "program.log"
    tmp.mkdir()
    proc = _start([sys.executable, "-c", PROGRAM], tmp, log)
    try:
        child = _wait_for_child(proc, "child", log)
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        assert code == (130 if sig == signal.SIGINT else 128 + signal.SIGTERM), log.read_text()
        if sig == signal.SIGINT:  # Ctrl-C still reaches the program as KeyboardInterrupt
            assert log.read_text().strip() == "interrupted"
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert not _started_under(tmp)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_what_is_left(tmp)
        proc.wait()
