"""Whole, valid artefacts built through their contracts, for tests that need one by hand.

A test changes what it is about (``sample_manifest(rows=2000)``, ``.model_copy(...)``) and
gets every other field as training writes it, so no test builds a partial dict that the
real readers would reject.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from smarthome.analysis.segments import GroupStats, profile_from_groups
from smarthome.contracts import model_sets as registry
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.manifest import (
    ClassificationBaseline,
    ClassificationMetrics,
    ClusteringMetrics,
    ClusteringSection,
    EfficiencySection,
    MalfunctionSection,
    Manifest,
    Models,
    NoBaseline,
    RegressionBaseline,
    RegressionMetrics,
    Split,
    TrainSettings,
    TriedModel,
    Versions,
)
from smarthome.contracts.records import NUMERIC_FEATURES

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def sample_manifest(
    number: int = 1,
    rows: int = 1000,
    *,
    accuracy: float = 0.96,
    rmse: float = 1.4,
    beats_mean: bool = False,
    created: datetime | None = None,
    name: str | None = None,
) -> Manifest:
    """A set's manifest as ``spark_training.py`` writes it, with the given figures."""
    created = created or WHEN + timedelta(minutes=number)
    train = rows * 4 // 5
    regression = RegressionMetrics(rmse=rmse, mae=1.2, r2=0.01)
    return Manifest(
        set=number,
        name=name or registry.set_name(number, created),
        created_at=created.isoformat(timespec="seconds"),
        batch_files=[f"batch_{i}.csv" for i in range(number)],
        rows=rows,
        rows_skipped=0,
        rows_skipped_by_file={},
        split=Split(
            method="hash", seed=42, test_percent=20, train_rows=train, test_rows=rows - train
        ),
        config=TrainSettings(k=2, seed=42, test_percent=20, quick=True),
        versions=Versions(
            spark="4.1.1",
            pyspark="4.1.1",
            python="3.11",
            java="17",
            numpy="2",
            pandas="2",
            smarthome="0.1.0",
        ),  # fmt: skip
        seconds=12.5,
        models=Models(
            efficiency=EfficiencySection(
                algorithm="RandomForestClassifier",
                label="SmartHomeEfficiency",
                params={"numTrees": 8, "seed": 42},
                fit_on="training split",
                training_seconds=3.0,
                metrics=ClassificationMetrics(
                    accuracy=accuracy, f1=0.9, f1_efficient=0.9, roc_auc=0.97
                ),
                baseline=ClassificationBaseline(
                    kind="majority class of the training split (0)",
                    accuracy=0.6,
                    f1=0.45,
                    f1_efficient=0.0,
                    roc_auc=0.5,
                ),  # fmt: skip
                beats_baseline=accuracy > 0.6,
                feature_importances=[0.1] * 10,
            ),
            malfunction=MalfunctionSection(
                algorithm="LinearRegression",
                label="MalfunctionIncidents",
                params={},
                fit_on="training split",
                training_seconds=1.0,
                metrics=regression,
                baseline=RegressionBaseline(
                    kind="training mean (2.0)", mean=2.0, rmse=1.5, mae=1.2, r2=0.0
                ),
                beats_baseline=beats_mean,
                beats_baseline_rule="held-out RMSE at least 1% below the mean's",
                note="no better than the mean",
                tried=[TriedModel(algorithm="LinearRegression", params={}, metrics=regression)],
            ),
            clustering=ClusteringSection(
                algorithm="KMeans",
                params={"k": 2, "seed": 42},
                fit_on="all rows",
                training_seconds=1.0,
                metrics=ClusteringMetrics(silhouette=0.4),
                baseline=NoBaseline(kind="none (unsupervised)"),
                k=2,
                cluster_sizes=[rows // 2, rows - rows // 2],
            ),
        ),
    )


def sample_clusters() -> Clusters:
    """``clusters.json`` of two segments (light-use thermostats, heavy-use cameras)."""

    def group(cluster: int, device_type: str, rows: int, level: float) -> GroupStats:
        means = dict.fromkeys(NUMERIC_FEATURES, level)
        return GroupStats(
            cluster, device_type, rows, means, dict.fromkeys(NUMERIC_FEATURES, 1.0), rows // 2
        )

    return profile_from_groups([group(0, "Thermostat", 100, 1.0), group(1, "Camera", 300, 9.0)], 2)


def write_set(model_dir: Path, manifest: Manifest, clusters: Clusters | None = None) -> Path:
    """A published set folder holding the manifest (and clusters.json if given), no models."""
    folder = model_dir / manifest.name
    folder.mkdir(parents=True)
    manifest.write(folder / registry.MANIFEST)
    if clusters is not None:
        clusters.write(folder / registry.CLUSTERS)
    return folder


def rename_key(path: Path, dotted: str, new_name: str) -> None:
    """Rename one key of a JSON file in place (``models.efficiency.metrics.accuracy``)."""
    data = json.loads(path.read_text())
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[new_name] = node.pop(last)
    path.write_text(json.dumps(data))
