"""A real Prometheus (Debian's ``prometheus`` package) scraping the pipeline's stages.

``write_config`` writes a scrape config with one job per stage's metrics port (``make demo``
writes ``.run/prometheus.yml``); ``LocalPrometheus`` runs the binary on 127.0.0.1 with its
own data dir and answers queries through Prometheus's HTTP API.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from smarthome.errors import UserError

SCRAPE_INTERVAL = "2s"


def binary() -> str | None:
    return shutil.which("prometheus")


def write_config(path: Path, targets: dict[str, int], interval: str = SCRAPE_INTERVAL) -> Path:
    """A prometheus.yml scraping http://127.0.0.1:PORT/metrics for each job name."""
    lines = [
        "# Written by smarthome/devtools/prometheus.py: one job per pipeline stage.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
    ]
    for job, port in targets.items():
        lines += [
            f"  - job_name: {job}",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{port}']",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


class LocalPrometheus:
    """``prometheus --config.file=...`` on 127.0.0.1:port, data under ``data_dir``."""

    def __init__(self, config: Path, port: int, data_dir: Path, log: Path) -> None:
        self.config, self.port, self.data_dir, self.log = config, port, data_dir, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        exe = binary()
        if exe is None:
            raise UserError("prometheus is not installed; `sudo apt-get install prometheus`")
        return [
            exe,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.data_dir}",
        ]

    def start(self, timeout: float = 60) -> None:
        command = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UserError(f"prometheus exited with {self.proc.returncode}; see {self.log}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise UserError(f"prometheus was not ready within {timeout:.0f} s; see {self.log}")

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector of a PromQL expression (``data.result``)."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
