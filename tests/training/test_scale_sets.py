"""``spark_training.py --max-sets M``: only the newest M cumulative sets are ever trained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import list_batch_files
from tests.conftest import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_max_sets_trains_the_newest_sets_only_and_a_second_run_has_nothing_to_do(
    spark: Any, dataset_batch_dir: Path, tmp_path: Path
) -> None:
    from smarthome.training.config import TrainConfig
    from smarthome.training.runner import run_once

    names = [p.name for p in list_batch_files(dataset_batch_dir)]
    model_dir = tmp_path / "models"
    lines: list[str] = []
    published = run_once(
        spark, dataset_batch_dir, model_dir, TrainConfig(quick=True), max_sets=2, log=lines.append
    )
    assert [registry.set_number(p) for p in published] == [len(names) - 1, len(names)]
    assert registry.list_sets(model_dir) == published  # sets 1..N-2 were never trained
    for folder in published:
        manifest = json.loads((folder / registry.MANIFEST).read_text())
        assert manifest["batch_files"] == names[: manifest["set"]]  # still cumulative
    n = len(names)
    reads = f"{2 * n - 1} batch file reads (every set 1..{n} would read {n * (n + 1) // 2})"
    assert any(reads in line for line in lines), lines

    # the command line: nothing missing among the newest 2, said before starting Spark
    result = subprocess.run(
        [
            sys.executable,
            "spark_training.py",
            "--batch-dir",
            str(dataset_batch_dir),
            "--model-dir",
            str(model_dir),
            "--max-sets",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"nothing new to train: sets {n - 1}..{n} of {n} batch file(s) exist in {model_dir} "
        "(--max-sets 2)"
    )


def test_max_sets_flag_errors_are_one_line() -> None:
    for flags, message in [
        (["--max-sets", "-1"], "--max-sets must be >= 0"),
        (["--max-sets", "2", "--latest-only"], "not allowed with argument"),
        (["--max-sets", "2", "--watch"], "bound it with --latest-only"),
    ]:
        result = subprocess.run(
            [sys.executable, "spark_training.py", *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert message in result.stderr.strip().splitlines()[-1]
        assert "Traceback" not in result.stderr
