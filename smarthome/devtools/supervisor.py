"""Start stage scripts as child processes, each logging to its own file, and stop them all.

Each child gets its own process group, so stopping a stage also stops what it started
(spark-submit's JVM, for example), and nothing is left behind after Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from smarthome.devtools.processes import parent_death_signal


@dataclass
class Stage:
    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    #: SIGTERMed when the process that started it dies, even by SIGKILL (Linux)
    die_with_parent: bool = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """Ctrl-C first (clean shutdown), then SIGTERM, then SIGKILL, to the whole group."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            if _wait_group(self.process, wait):
                break
        self.process.poll()


def _wait_group(process: subprocess.Popen, timeout: float) -> bool:
    """Wait until the leader has exited and no process is left in its group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


class Supervisor:
    """Stages started in order and stopped in reverse order."""

    def __init__(self) -> None:
        self.stages: list[Stage] = []

    def start(self, stage: Stage) -> Stage:
        stage.start()
        self.stages.append(stage)
        return stage

    def failed(self) -> list[Stage]:
        """Long-running stages that exited with an error."""
        return [s for s in self.stages if s.process and s.process.poll() not in (None, 0)]

    def stop_all(self) -> None:
        for stage in reversed(self.stages):
            stage.stop()
