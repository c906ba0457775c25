"""``python app_api.py`` as a user runs it: one-line errors, and a 503 until a set exists."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import requests

from smarthome.devtools.servers import running_api
from tests.conftest import ROOT


def run_api(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app_api.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("app_api.py: error: ")
    for text in expected:
        assert text in lines[0]


def test_missing_model_dir_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run_api("--port", "0", "--model-dir", str(missing))
    assert_one_line_error(result, f"model dir {missing} does not exist", "spark_training.py")


def test_model_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "models.txt"
    file.write_text("x")
    assert_one_line_error(run_api("--model-dir", str(file)), "is not a folder")


def test_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_api("--port", str(port), "--model-dir", str(tmp_path))
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "--port")


def test_help_names_the_env_default() -> None:
    result = run_api("--help")
    assert result.returncode == 0
    assert "MODEL_DIR" in result.stdout and "--reload-seconds" in result.stdout


def test_no_model_set_serves_503_with_how_to_train(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    with running_api(models, tmp_path / "api.log") as url:
        answer = requests.post(url + "/predict_malfunction", json={}, timeout=10)
        assert answer.status_code == 422  # a client mistake is named even without a model
        row = {
            "DeviceType": "Camera",
            "UsageHoursPerDay": 2.5,
            "EnergyConsumption": 1.0,
            "UserPreferences": 0,
            "DeviceAgeMonths": 12,
        }
        answer = requests.post(url + "/predict_malfunction", json=row, timeout=10)
        assert answer.status_code == 503
        assert answer.json() == {
            "error": f"no model set in {models}; train one with: spark-submit spark_training.py",
            "details": [],
        }
        assert requests.get(url + "/", timeout=10).json()["status"] == "no model set"
