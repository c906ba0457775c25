"""The README's walkthrough, run as written: each stage in its own 'terminal', then the curls.

The commands run in a copy of the repository (sharing .venv and the Kafka jars), with the
virtualenv on PATH as the README says, on the default ports the README names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from smarthome.devtools.ports import port_open
from tests.conftest import ROOT, require

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

MARKER = "<!-- tests/test_readme.py runs this block"
LONG_RUNNING = ("python app_api.py", "streamlit run")
DEFAULT_PORTS = {9092: "Kafka", 9093: "Kafka's controller", 5000: "the API", 8501: "the UI"}


def readme_blocks() -> list[list[str]]:
    """The command lines of each README code block marked as run by this test."""
    text = (ROOT / "README.md").read_text()
    blocks = []
    for match in re.finditer(re.escape(MARKER) + r".*?-->\n```bash\n(.*?)```", text, re.S):
        joined = match.group(1).replace("\\\n", " ")
        lines = [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines()]
        blocks.append([line for line in lines if line])
    return blocks


def _copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", ".cache", ".run", "logs", "__pycache__", ".pytest_cache", "docs"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    for folder in ("batched_data", "spark_models"):
        for item in (dest / folder).iterdir():
            if item.name != ".gitkeep":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    (dest / ".venv").symlink_to(ROOT / ".venv")
    (dest / ".cache").symlink_to(ROOT / ".cache")
    return dest


def _wait_for(port: int, what: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{what} did not listen on {port}"
        time.sleep(0.3)


@pytest.mark.timeout(1800)  # each command has its own limit; together they took 564 s, loaded
def test_readme_walkthrough_runs_as_written(java_available: None, tmp_path: Path) -> None:
    busy = [f"{port} ({name})" for port, name in DEFAULT_PORTS.items() if port_open(port)]
    require(not busy, f"free default ports for the README walkthrough; busy: {busy}")
    stages, curls = readme_blocks()
    assert stages[0] == "make kafka-up" and stages[-1] == "make kafka-down"
    repo = _copy_repo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if k.split("_")[0] not in ("KAFKA", "API")}
    env = {k: v for k, v in env.items() if k not in ("BATCH_DIR", "MODEL_DIR", "DATASET_PATH")}
    env.update(PATH=f"{repo / '.venv' / 'bin'}:{env['PATH']}", VIRTUAL_ENV=str(repo / ".venv"))

    def shell(command: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, shell=True, cwd=repo, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    background: list[subprocess.Popen] = []
    try:
        for command in stages[:-1]:
            if command.startswith(LONG_RUNNING):
                log = open(tmp_path / f"{command.split()[1]}.log", "w")  # noqa: SIM115
                process = subprocess.Popen(
                    command, shell=True, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
                background.append(process)
                port = 5000 if "app_api" in command else 8501
                _wait_for(port, command, process)
                continue
            result = shell(command, timeout=600)
            assert result.returncode == 0, f"`{command}` failed:\n{result.stderr[-2000:]}"

        # what the stages left, as the README describes it
        batches = sorted((repo / "batched_data").glob("smart_home_batch_*.csv"))
        assert len(batches) == 6  # 5,403 records in files of 1,000
        sets = sorted((repo / "spark_models").glob("*Z_set*"))
        assert [s.name[-7:] for s in sets] == [f"set{n:04d}" for n in range(1, 7)]
        clusters = json.loads((sets[-1] / "clusters.json").read_text())
        assert all(c["description"] for c in clusters["clusters"])

        for command in curls:
            result = shell(command, timeout=30)
            assert result.returncode == 0, f"`{command}` failed: {result.stderr}"
            answer = json.loads(result.stdout)
            assert answer["model_set"] == sets[-1].name, answer
        assert requests.get("http://localhost:8501", timeout=10).status_code == 200
    finally:
        for process in background:
            os.killpg(process.pid, 15)
            process.wait(30)
        result = shell(stages[-1], timeout=120)  # make kafka-down
    assert result.returncode == 0, result.stderr
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(repo) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
