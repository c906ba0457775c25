"""The device segments: grouped by how devices are used, k chosen by silhouette, described.

The trained-set test uses the real configuration on the full dataset (``trained_model_dir``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import spark_training
from smarthome.contracts import model_sets as registry
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.records import DEVICE_TYPES, NUMERIC_FEATURES
from smarthome.scoring.model_set import ModelSet
from smarthome.training.config import K_CANDIDATES


@pytest.mark.spark
@pytest.mark.slow
def test_full_dataset_segments_differ_in_efficiency_and_mix_every_device_type(
    trained_model_dir: Path,
) -> None:
    (folder,) = registry.list_sets(trained_model_dir)
    clusters = Clusters.read(folder / registry.CLUSTERS)
    manifest = Manifest.read(folder / registry.MANIFEST)
    assert all(s.size for s in clusters.clusters)
    rates = [s.efficiency_rate for s in clusters.clusters]
    # the segments tell apart efficient use: >= 40 points between the extremes
    assert max(rates) - min(rates) >= 0.40, rates
    # and they are not the device types again: no segment is more than 40% one type
    for segment in clusters.clusters:
        assert max(segment.device_type_shares.values()) <= 0.40, segment.device_type_shares

    section = manifest.models.clustering
    assert section.metrics.efficient_share_spread == pytest.approx(max(rates) - min(rates))
    assert section.features == NUMERIC_FEATURES
    assert manifest.config.k is None  # chosen, not given
    tried = section.k_selection.tried
    assert [c.k for c in tried] == list(K_CANDIDATES)
    best = max(tried, key=lambda c: c.silhouette)
    assert (section.k, section.metrics.silhouette) == (best.k, best.silhouette)
    assert clusters.k == section.k == section.params["k"]

    stages = json.loads((folder / registry.SCORING).read_text())["clustering"]["stages"]
    assert [s["type"] for s in stages] == ["VectorAssembler", "StandardScaler", "KMeans"]
    assert stages[0]["inputCols"] == NUMERIC_FEATURES

    for segment in clusters.clusters:
        assert segment.description.startswith(f"Segment {segment.id} (")
        assert "efficient" in segment.description
        assert segment.describe("id").startswith(f"Segmen {segment.id} (")
        assert "efisien" in segment.describe("id")
        assert segment.named("en") and segment.named("id")
        assert "close to the average" not in segment.description  # each has a trait
        assert segment.description.endswith("each.")  # "every device type, 19-22% each."
        assert segment.description.isascii()


@pytest.mark.spark
@pytest.mark.slow
def test_a_devices_segment_does_not_depend_on_its_type(trained_model_dir: Path) -> None:
    model_set = ModelSet.load(registry.newest_set(trained_model_dir))
    usage = {
        "UsageHoursPerDay": 20.0,
        "EnergyConsumption": 8.0,
        "UserPreferences": 0,
        "MalfunctionIncidents": 2,
        "DeviceAgeMonths": 30,
    }
    rows = [{"DeviceType": device, **usage} for device in DEVICE_TYPES]
    assert len(set(model_set.segment(rows))) == 1


@pytest.mark.spark
def test_a_given_k_and_a_quick_set_fit_one_k_and_say_why(spark, dataset_batch_dir: Path) -> None:
    from smarthome.contracts.batch_files import list_batch_files
    from smarthome.training.batches import read_batches
    from smarthome.training.config import TrainConfig
    from smarthome.training.fit import train_clustering
    from smarthome.training.pipelines import model_input

    files = list_batch_files(dataset_batch_dir)[:1]
    data = read_batches(spark, files)
    model, section = train_clustering(model_input(data.df), TrainConfig(k=3, quick=True))
    assert section["k"] == 3 == model.stages[-1].getK()
    assert section["k_selection"] == {
        "rule": "given (--k)",
        "tried": [{"k": 3, "silhouette": section["metrics"]["silhouette"]}],
    }
    assert sum(section["cluster_sizes"]) == data.rows
    # a quick set without --k fits QUICK_K alone too: smoke tests skip the search
    _, quick = train_clustering(model_input(data.df), TrainConfig(quick=True))
    assert quick["k"] == 4
    assert quick["k_selection"]["rule"] == "fixed for quick sets (--quick)"
    data.release()


def test_k_is_auto_by_default_or_a_whole_number() -> None:
    assert spark_training.parse_args([]).k is None
    assert spark_training.parse_args(["--k", "auto"]).k is None
    assert spark_training.parse_args(["--k", "5"]).k == 5
    for bad in ("1", "many"):
        with pytest.raises(SystemExit):
            spark_training.parse_args(["--k", bad])
