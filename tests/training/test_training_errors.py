"""spark_training.py on bad input: one line naming the folder/file, or a bad row skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import batch_file_name
from smarthome.contracts.records import RECORD_COLUMNS
from tests.conftest import ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "spark_training.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def batch_path(batch_dir: Path, start: int = 0, end: int = 9) -> Path:
    batch_dir.mkdir(parents=True, exist_ok=True)
    return batch_dir / batch_file_name("smart_home_stream", 0, start, end)


def test_missing_batch_folder(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    line = one_line_error(run_cli("--batch-dir", str(folder), "--model-dir", str(tmp_path)))
    assert str(folder) in line and "kafka_consumer_batch.py" in line


def test_no_batch_files(tmp_path: Path) -> None:
    folder = tmp_path / "batches"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a batch file")
    line = one_line_error(run_cli("--batch-dir", str(folder), "--model-dir", str(tmp_path)))
    assert "no batch files" in line and str(folder) in line
    assert "kafka_consumer_batch.py" in line


def test_empty_batch_file(tmp_path: Path) -> None:
    path = batch_path(tmp_path / "batches")
    path.write_bytes(b"")
    line = one_line_error(run_cli("--batch-dir", str(path.parent), "--model-dir", str(tmp_path)))
    assert path.name in line and "empty" in line


def test_missing_column(tmp_path: Path, dataset_path: Path) -> None:
    path = batch_path(tmp_path / "batches")
    pd.read_csv(dataset_path, nrows=10).drop(columns=["DeviceAgeMonths"]).to_csv(path, index=False)
    line = one_line_error(run_cli("--batch-dir", str(path.parent), "--model-dir", str(tmp_path)))
    assert path.name in line and "missing column(s) DeviceAgeMonths" in line
    assert registry.list_sets(tmp_path) == []


@pytest.mark.spark
def test_bad_rows_are_skipped_and_counted(spark, dataset_path: Path, tmp_path: Path) -> None:
    from smarthome.training.config import TrainConfig
    from smarthome.training.runner import run_once

    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    good = pd.read_csv(dataset_path, nrows=300)[RECORD_COLUMNS]
    path = batch_path(batch_dir, 0, 305)
    text = good.to_csv(index=False, lineterminator="\n")
    text += "9001,Camera,not-a-number,1.0,1,0,12,1\n"  # unparseable
    text += "9002,Camera,30.5,1.0,1,0,12,1\n"  # out of range (> 24 h)
    text += "9003,Toaster,3.0,1.0,1,0,12,1\n"  # unknown device type
    text += "9004,Camera,3.0\n"  # too few fields
    text += "9005,Camera,3.0,1.0,1,99999999999,12,1\n"  # does not fit an int
    text += "9006,Camera,3.0,1.0,1,0,12,1,extra\n"  # too many fields
    path.write_text(text)
    lines: list[str] = []

    published = run_once(
        spark, batch_dir, model_dir, TrainConfig(quick=True), min_rows=50, log=lines.append
    )

    assert len(published) == 1
    manifest = json.loads((published[0] / registry.MANIFEST).read_text())
    assert manifest["rows"] == 300
    assert manifest["rows_skipped"] == 6
    assert manifest["rows_skipped_by_file"] == {path.name: 6}
    assert any(path.name in line and "6 bad row(s) skipped" in line for line in lines)


@pytest.mark.spark
def test_too_few_rows_are_skipped(spark, dataset_path: Path, tmp_path: Path) -> None:
    from smarthome.training.config import TrainConfig
    from smarthome.training.runner import run_once

    path = batch_path(tmp_path / "batches", 0, 19)
    pd.read_csv(dataset_path, nrows=20)[RECORD_COLUMNS].to_csv(path, index=False)
    lines: list[str] = []
    published = run_once(
        spark, path.parent, tmp_path / "models", TrainConfig(quick=True), log=lines.append
    )
    assert published == []
    assert any("20 rows < --min-rows 50" in line for line in lines)
