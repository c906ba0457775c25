"""Today's training settings fit the same models as ``--legacy-speed`` (before issue 14).

The speed-ups (one job for the split and the device-type counts, indexers built from those
counts, segment sizes from the profile, saves and exports while the forest is evaluated) must
change no tree, coefficient, center or metric: the same batches and seed give the same
``scoring.json`` and ``clusters.json`` and the same manifest figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _train(spark, batch_dir: Path, model_dir: Path, legacy_speed: bool) -> Path:
    from smarthome.training.models import TrainConfig
    from smarthome.training.runner import run_once

    cfg = TrainConfig(quick=True, legacy_speed=legacy_speed)
    run_once(spark, batch_dir, model_dir, cfg, latest_only=True, log=lambda _line: None)
    return registry.newest_set(model_dir)


def test_fast_settings_train_the_models_legacy_speed_trains(
    spark, dataset_batch_dir: Path, tmp_path: Path
) -> None:
    fast = _train(spark, dataset_batch_dir, tmp_path / "fast", legacy_speed=False)
    before = _train(spark, dataset_batch_dir, tmp_path / "before", legacy_speed=True)

    for name in (registry.SCORING, registry.CLUSTERS):
        assert json.loads((fast / name).read_text()) == json.loads((before / name).read_text())
    fast_models = json.loads((fast / registry.MANIFEST).read_text())["models"]
    before_models = json.loads((before / registry.MANIFEST).read_text())["models"]
    for name, section in before_models.items():
        for metric, value in section["metrics"].items():
            # Spark does not fix the summation order of the ROC AUC's last digit
            assert fast_models[name]["metrics"][metric] == pytest.approx(value, abs=1e-12), (
                f"{name} {metric}"
            )
        assert fast_models[name]["baseline"] == section["baseline"], name
    assert (
        fast_models["clustering"]["cluster_sizes"] == before_models["clustering"]["cluster_sizes"]
    )
    assert sum(fast_models["clustering"]["cluster_sizes"]) == 5403


def test_indexer_labels_from_counts_equal_a_fitted_string_indexer(spark) -> None:
    from pyspark.ml.feature import StringIndexer

    from smarthome.training.features import labels_by_frequency

    counts = {"Thermostat": 5, "Camera": 3, "Smart Speaker": 3, "Lights": 1, "camera": 3}
    frame = spark.createDataFrame(
        [(value,) for value, n in counts.items() for _ in range(n)], "DeviceType string"
    ).repartition(3)
    fitted = StringIndexer(inputCol="DeviceType", outputCol="i", handleInvalid="keep").fit(frame)
    assert labels_by_frequency(counts) == list(fitted.labels)
    assert labels_by_frequency(counts)[:4] == ["Thermostat", "Camera", "Smart Speaker", "camera"]
