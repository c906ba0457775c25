"""Fixtures for the models stage, shared with the scoring, API and UI tests.

- ``spark``: one local[2] SparkSession for the whole test run (needs Java 17);
- ``dataset_batch_dir``: the dataset as 6 batch files in DESIGN §5 format;
- ``trained_model_dir``: a model dir holding ONE set trained on all 5,403 rows (the real
  configuration, via the library in-process, as ``--latest-only`` does).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smarthome.devtools.batches import write_batches


@pytest.fixture(scope="session")
def spark(java_available: None) -> Iterator[object]:
    from smarthome.training.spark import get_spark

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
    from smarthome.training.config import TrainConfig
    from smarthome.training.runner import run_once

    model_dir = tmp_path_factory.mktemp("trained_models")
    published = run_once(
        spark, dataset_batch_dir, model_dir, TrainConfig(), latest_only=True, log=lambda _: None
    )
    assert len(published) == 1, published
    return model_dir
