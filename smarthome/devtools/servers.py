"""A stage's server as a child process, for tests and benchmarks: started, awaited, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from smarthome.devtools.ports import free_port
from smarthome.devtools.workspace import CHECKOUT as ROOT


@contextmanager
def serving(
    command: list[str],
    health_url: str,
    log_path: Path,
    *,
    env: dict | None = None,
    timeout: float = 60.0,
) -> Iterator[None]:
    """Run a server process until the test is done; yield once ``health_url`` answers 200."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    name = " ".join(command[1:3])
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(health_url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_api(
    model_dir: Path, log_path: Path, *extra: str, timeout: float = 60.0
) -> Iterator[str]:
    """Start ``app_api.py`` on a free port, yield its base URL once ``GET /`` answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "app_api.py", "--port", str(port), "--model-dir", str(model_dir), *extra
    ]  # fmt: skip
    with serving(command, url + "/", log_path, timeout=timeout):
        yield url


@contextmanager
def running_ui(api_url: str, log_path: Path) -> Iterator[str]:
    """``streamlit run app_ui.py`` on a free port, talking to the API at ``api_url``; yield
    its URL once Streamlit's health check answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app_ui.py",
        "--server.port", str(port), "--server.headless", "true",
        "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "API_URL": api_url}
    with serving(command, f"{url}/_stcore/health", log_path, env=env):
        yield url


def status_by_worker(url: str, workers: int, timeout: float = 30.0) -> dict[int, str]:
    """Worker pid -> the set it serves, from ``GET /`` over fresh connections (each new
    connection is accepted by whichever worker takes it) until every worker has answered."""
    found: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(found) < workers:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(found)} of {workers} workers answered")
        status = requests.get(url + "/", timeout=10, headers={"Connection": "close"}).json()
        found[status["worker_pid"]] = status["model_set"]
    return found


def wait_until_served(url: str, set_name: str, workers: int, timeout: float = 30.0) -> None:
    """Return once every worker process serves ``set_name``: each reloads on its own clock,
    so one answer with the new set does not mean the next request gets it."""
    deadline = time.monotonic() + timeout
    while set(status_by_worker(url, workers, timeout).values()) != {set_name}:
        if time.monotonic() > deadline:
            raise AssertionError(f"not every worker of {url} serves {set_name} yet")
        time.sleep(0.2)
