"""What the promotion and drift tests share: batch streams to train on step by step, and
promote_model.py run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from smarthome.contracts.records import RECORD_COLUMNS
from smarthome.devtools.batches import write_batches
from smarthome.devtools.workspace import CHECKOUT
from smarthome.ingest.synthetic import synthetic_records
from tests.helpers.records import dataset_records


def promote_model(model_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``promote_model.py --model-dir model_dir *args``, its output captured."""
    return subprocess.run(
        [sys.executable, "promote_model.py", "--model-dir", str(model_dir), *args],
        cwd=CHECKOUT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def flip_efficiency(batch: Path) -> None:
    """Corrupt a batch file upstream-style: every SmartHomeEfficiency label flipped."""
    frame = pd.read_csv(batch)
    frame["SmartHomeEfficiency"] = 1 - frame["SmartHomeEfficiency"]
    frame.to_csv(batch, index=False, lineterminator="\n")


def shifted_stream(
    dataset: Path, folder: Path, records: int, parts: int, shift_hours: float
) -> list[Path]:
    """A synthetic stream as ``parts`` batch files whose second half uses devices
    ``shift_hours`` more per day (capped at 24)."""
    rows = list(synthetic_records(dataset_records(dataset), records, seed=7))
    frame = pd.DataFrame(rows)[RECORD_COLUMNS]
    half = len(frame) // 2
    usage = frame.columns.get_loc("UsageHoursPerDay")
    frame.iloc[half:, usage] = (frame.iloc[half:, usage] + shift_hours).clip(upper=24.0)
    source = folder / "stream.csv"
    frame.to_csv(source, index=False)
    return write_batches(source, folder / "all", parts)


def add_batches(files: list[Path], batch_dir: Path) -> None:
    """Publish ``files`` into ``batch_dir`` as the consumer would (complete files only)."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, batch_dir / path.name)
