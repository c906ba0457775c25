"""Fixtures for the API stage: a real ``python app_api.py`` serving the real trained set."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_api(
    model_dir: Path, log_path: Path, *extra: str, timeout: float = 60.0
) -> Iterator[str]:
    """Start ``app_api.py`` on a free port, yield its base URL once ``GET /`` answers."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "app_api.py",
                "--port",
                str(port),
                "--model-dir",
                str(model_dir),
                *extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app_api.py exited early: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(url + "/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app_api.py did not answer: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def api_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of ``python app_api.py`` serving the session's trained model set."""
    log_path = tmp_path_factory.mktemp("api") / "app_api.log"
    with running_api(trained_model_dir, log_path) as url:
        yield url
