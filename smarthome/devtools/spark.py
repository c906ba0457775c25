"""A Spark standalone cluster on this machine: one master and N workers, each its own JVM.

Nothing is downloaded: pyspark ships ``bin/spark-class`` and every jar the standalone daemons
need. Everything binds 127.0.0.1; ports, worker cores and memory are parameters so tests can
run private clusters on free ports next to ``make spark-up``. Work and local dirs, pid files
and logs live under ``.run/``. Ready means every worker is registered with the master (its
UI's ``/json/`` lists them ALIVE); stop leaves no JVM behind (workers, their executors, the
master). The master's REST submission server (port 6066 by default) is switched off.

``python -m smarthome.devtools.spark up|down|status`` is what the Makefile calls.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil

from smarthome.cli import run
from smarthome.devtools.java import java_executable, log_cause
from smarthome.devtools.ports import port_open
from smarthome.devtools.processes import forget_process, our_process, parent_death_signal
from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError

DEFAULT_DIR = CHECKOUT / ".run" / "spark"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
MEMORY = re.compile(r"^[1-9][0-9]*[mg]$")
#: rewrites a daemon's command line (it must end by exec-ing it): tests run a worker elsewhere
Wrap = Callable[[list[str]], list[str]] | None


def spark_home() -> Path:
    """pyspark's own install: bin/spark-class and jars/ (no separate Spark download)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class _Daemon:
    """One master or worker JVM: started by spark-class, tracked by a pid file."""

    def __init__(self, name: str, main_class: str, args: list[str], base: Path) -> None:
        self.name = name
        self.main_class = main_class
        self.args = args
        self.conf_file = base / f"{name}.conf"  # also the pid guard: our file is in the cmdline
        self.pid_file = base / f"{name}.pid"
        self.log_file = base.parent / "logs" / f"spark-{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def process(self) -> psutil.Process | None:
        """Our JVM (from Popen or the pid file), if it is alive and really ours."""
        return our_process(self._proc, self.pid_file, self.main_class, self.conf_file)

    def start(
        self, conf: dict[str, str], env: dict[str, str], cwd: Path, pdeath: bool, wrap: Wrap
    ) -> None:
        self.conf_file.write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(spark_home() / "bin" / "spark-class"), self.main_class, *self.args]
        cmd += ["--properties-file", str(self.conf_file)]
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                wrap(cmd) if wrap else cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**os.environ, **env},
                start_new_session=True,  # survives `make spark-up` and its terminal's Ctrl-C
                preexec_fn=parent_death_signal() if pdeath else None,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def exited(self) -> int | None:
        """The exit code if the process we started has ended."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (then SIGKILL) this JVM and whatever it started (a worker's executors)."""
        proc = self.process()
        if proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                family = [proc, *proc.children(recursive=True)]
                proc.send_signal(signal.SIGTERM)
                _, alive = psutil.wait_procs([proc], timeout=timeout)
                # a worker's shutdown hook kills its executors; whatever is left, we kill
                _, alive = psutil.wait_procs(family, timeout=0 if alive else 10)
                for leftover in alive:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        leftover.kill()
                psutil.wait_procs(alive, timeout=10)
        forget_process(self._proc, self.pid_file)
        self._proc = None


class LocalSparkCluster:
    """A standalone master plus ``workers`` workers on 127.0.0.1, state under ``base_dir``."""

    def __init__(
        self,
        base_dir: Path = DEFAULT_DIR,
        workers: int = 2,
        port: int = 7077,
        ui_port: int = 8080,
        worker_cores: int = 1,
        worker_memory: str = "1g",
        daemon_memory: str = "256m",
        python: str = sys.executable,
        die_with_parent: bool = False,
        worker_wrap: Callable[[int, list[str]], list[str]] | None = None,
    ) -> None:
        if workers < 1 or worker_cores < 1:
            raise UserError("a Spark cluster needs at least 1 worker with at least 1 core")
        for flag, value in (("--worker-memory", worker_memory), ("--daemon-memory", daemon_memory)):
            if not MEMORY.match(value):
                raise UserError(f"{flag} must look like 512m or 1g (got {value!r})")
        self.base_dir = Path(base_dir).resolve()
        self.workers = workers
        self.port, self.ui_port = port, ui_port
        self.worker_cores, self.worker_memory = worker_cores, worker_memory
        self.daemon_memory = daemon_memory
        self.python = python  # executors' Python: the project's interpreter, not PATH's python3
        self.die_with_parent = die_with_parent  # tests: no orphan JVM if pytest is killed
        self.worker_wrap = worker_wrap  # (worker number, command) -> command, e.g. `unshare`
        self.master_url = f"spark://127.0.0.1:{port}"
        self.ui_url = f"http://127.0.0.1:{ui_port}"
        self.master = _Daemon(
            "master",
            MASTER_CLASS,
            ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)],
            self.base_dir,
        )
        self.worker_daemons = [self._worker(i) for i in range(1, workers + 1)]

    def _worker(self, number: int) -> _Daemon:
        args = ["--host", "127.0.0.1", "--webui-port", "0"]  # 0: any free port, no clashes
        args += ["--cores", str(self.worker_cores), "--memory", self.worker_memory]
        args += ["--work-dir", str(self.base_dir / f"worker-{number}" / "work"), self.master_url]
        return _Daemon(f"worker-{number}", WORKER_CLASS, args, self.base_dir)

    @property
    def daemons(self) -> list[_Daemon]:
        """The master and every worker: ours, plus any a bigger earlier start left pid files of."""
        stems = [p.stem.split("-", 1)[1] for p in self.base_dir.glob("worker-*.pid")]
        numbers = {int(s) for s in stems if s.isdigit()}
        extra = [self._worker(n) for n in sorted(numbers) if n > self.workers]
        return [self.master, *self.worker_daemons, *extra]

    @property
    def pid(self) -> int | None:
        proc = self.master.process()
        return proc.pid if proc else None

    def is_running(self) -> bool:
        """Whether this cluster's master JVM is alive."""
        return self.master.process() is not None

    def _env(self, local_dir: Path | None = None) -> dict[str, str]:
        env = {
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",  # the UIs bind 0.0.0.0 otherwise
            "SPARK_DAEMON_MEMORY": self.daemon_memory,
            "PYSPARK_PYTHON": self.python,
        }
        if local_dir is not None:
            env["SPARK_LOCAL_DIRS"] = str(local_dir)  # executors' shuffle and spill files
        return env

    def start(self, timeout: float = 180) -> None:
        """Start the master, then the workers; return when every worker is registered."""
        if self.is_running():
            return
        java_executable()
        for port in (self.port, self.ui_port):
            if port_open(port):
                raise UserError(
                    f"port {port} on 127.0.0.1 is already in use by another process;"
                    " pick another with --port/--ui-port"
                )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.master.start(
                {"spark.master.rest.enabled": "false"},
                self._env(),
                self.base_dir,
                self.die_with_parent,
                None,
            )
            for number, worker in enumerate(self.worker_daemons, start=1):
                home = self.base_dir / f"worker-{number}"
                local = home / "local"
                local.mkdir(parents=True, exist_ok=True)
                (home / "work").mkdir(exist_ok=True)
                conf = {"spark.local.dir": str(local), "spark.worker.cleanup.enabled": "true"}
                wrap = partial(self.worker_wrap, number) if self.worker_wrap else None
                worker.start(conf, self._env(local), home, self.die_with_parent, wrap)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def alive_workers(self) -> int | None:
        """How many workers the master lists as ALIVE; None if its UI does not answer."""
        try:
            with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=2) as response:
                state = json.load(response)
        except (OSError, ValueError):
            return None
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for daemon in self.daemons:
                code = daemon.exited()
                if code is not None:
                    raise UserError(
                        f"Spark {daemon.name} exited with code {code} during start-up;"
                        f" log {daemon.log_file}: {log_cause(daemon.log_file, 2)}"
                    )
            if (self.alive_workers() or 0) >= self.workers:
                return
            time.sleep(0.3)
        raise UserError(
            f"{self.alive_workers() or 0} of {self.workers} Spark workers registered within"
            f" {timeout:.0f} s; see {self.master.log_file.parent}/spark-*.log"
        )

    def stop(self) -> None:
        """Stop the workers (and their executors), then the master."""
        for daemon in self.daemons[::-1]:
            daemon.stop()


# -- command line (make spark-up / spark-down / spark-status) ----------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smarthome.devtools.spark",
        description="Start/stop a local Spark standalone cluster (a master and N workers).",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--workers", type=int, default=2, help="worker JVMs (default 2)")
    parser.add_argument("--port", type=int, default=7077, help="master port (default 7077)")
    parser.add_argument("--ui-port", type=int, default=8080, help="master UI (default 8080)")
    parser.add_argument("--worker-cores", type=int, default=1, help="cores per worker (1)")
    parser.add_argument("--worker-memory", default="1g", help="memory per worker (1g)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"work/local dirs and pid files (default {DEFAULT_DIR})",
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for start")
    args = parser.parse_args(argv)
    for name in ("workers", "port", "ui_port", "worker_cores"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    cluster = LocalSparkCluster(
        args.dir,
        workers=args.workers,
        port=args.port,
        ui_port=args.ui_port,
        worker_cores=args.worker_cores,
        worker_memory=args.worker_memory,
    )
    if args.command == "status":
        if cluster.is_running():
            alive = cluster.alive_workers()
            print(
                f"Spark master is running (pid {cluster.pid}) at {cluster.master_url}, UI"
                f" {cluster.ui_url}, {'?' if alive is None else alive} worker(s) alive"
            )
        else:
            print(f"Spark master is not running (dir {cluster.base_dir})")
        return 0
    if args.command == "down":
        running = [d for d in cluster.daemons if d.process() is not None]
        if not running:
            print(f"Spark is not running (dir {cluster.base_dir})")
            return 0
        cluster.stop()
        print(f"Spark stopped ({', '.join(d.name for d in running)})")
        return 0
    stop = "make spark-down"
    if cluster.base_dir != DEFAULT_DIR.resolve():
        stop = f"python -m smarthome.devtools.spark down --dir {cluster.base_dir}"
    if cluster.is_running():
        print(
            f"Spark master is already running (pid {cluster.pid}) at {cluster.master_url}"
            f" with {cluster.alive_workers() or 0} worker(s); `{stop}` stops it"
        )
        return 0
    started = time.monotonic()
    cluster.start(timeout=args.timeout)
    print(
        f"Spark is up at {cluster.master_url} (UI {cluster.ui_url}) with {args.workers}"
        f" worker(s) x {args.worker_cores} core(s) x {args.worker_memory} after"
        f" {time.monotonic() - started:.1f} s; logs: {cluster.master.log_file.parent}/spark-*.log;"
        f" train with `spark-submit --master {cluster.master_url} spark_training.py`;"
        f" stop it with `{stop}`"
    )
    return 0


if __name__ == "__main__":
    run(main, "spark_local")
