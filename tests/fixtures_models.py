"""Fixtures for the models stage, shared with the scoring, API and UI tests.

- ``spark``: one local[2] SparkSession for the whole test run (needs Java 17);
- ``dataset_batch_dir``: the dataset as 6 batch files in DESIGN §5 format;
- ``trained_model_dir``: a model dir holding ONE set trained on all 5,403 rows (the real
  configuration, via the library in-process, as ``--latest-only`` does).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from smarthome.batchfiles import batch_file_name
from smarthome.schema import RECORD_COLUMNS

TOPIC = "smart_home_stream"
BATCHES = 6


def write_batches(
    dataset: Path, batch_dir: Path, parts: int = BATCHES, start_offset: int = 0
) -> list[Path]:
    """Write ``dataset``'s rows as ``parts`` consecutive batch files (names in publish order)."""
    frame = pd.read_csv(dataset)[RECORD_COLUMNS]
    batch_dir.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // parts)
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    paths = []
    for i in range(parts):
        chunk = frame.iloc[i * size : (i + 1) * size]
        start = start_offset + i * size
        end = start + len(chunk) - 1
        when = base + timedelta(seconds=start_offset + i)
        path = batch_dir / batch_file_name(TOPIC, 0, start, end, when)
        buffer = io.StringIO()
        chunk.to_csv(buffer, index=False, lineterminator="\n")
        path.write_text(buffer.getvalue(), encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def spark(java_available: None) -> Iterator[object]:
    from smarthome.spark import get_spark

    session = get_spark("local[2]", app_name="smarthome-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def dataset_batch_dir(dataset_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    batch_dir = tmp_path_factory.mktemp("dataset_batches")
    write_batches(dataset_path, batch_dir)
    return batch_dir


@pytest.fixture(scope="session")
def trained_model_dir(
    spark: object, dataset_batch_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from smarthome.training import TrainConfig
    from smarthome.training_sets import run_once

    model_dir = tmp_path_factory.mktemp("trained_models")
    published = run_once(
        spark, dataset_batch_dir, model_dir, TrainConfig(), latest_only=True, log=lambda _: None
    )
    assert len(published) == 1, published
    return model_dir
