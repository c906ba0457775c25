"""Score a set on some rows with the numpy scorer: what the gate compares.

The metrics are Spark's definitions (``smarthome.training.metrics``): accuracy, weighted F1
(each true class's F1 weighted by its share of the rows; a class never predicted has F1 0),
and RMSE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from smarthome.contracts.manifest import Manifest
from smarthome.contracts.records import EFFICIENCY_LABEL, MALFUNCTION_LABEL
from smarthome.scoring.batch_rows import batch_paths, read_rows, split_rows
from smarthome.scoring.model_set import ModelSet


@dataclass(frozen=True)
class Scores:
    accuracy: float
    f1: float
    rmse: float


def weighted_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    total = 0.0
    for cls in np.unique(labels):
        tp = float(np.sum((predicted == cls) & (labels == cls)))
        fp = float(np.sum((predicted == cls) & (labels != cls)))
        fn = float(np.sum((predicted != cls) & (labels == cls)))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        total += f1 * float(np.sum(labels == cls)) / len(labels)
    return total


def rmse(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - labels) ** 2)))


def score(set_dir: Path, rows: pd.DataFrame) -> Scores:
    """The set's efficiency and malfunction models on ``rows`` (non-empty)."""
    model_set = ModelSet.load(set_dir)
    records = rows.to_dict("records")
    efficiency = model_set.efficiency.predict(records).prediction.astype(np.int64)
    malfunction = model_set.malfunction.predict(records).prediction
    labels = rows[EFFICIENCY_LABEL].to_numpy()
    return Scores(
        accuracy=float(np.mean(efficiency == labels)),
        f1=weighted_f1(labels, efficiency),
        rmse=rmse(rows[MALFUNCTION_LABEL].to_numpy(), malfunction),
    )


def held_out_rows(manifest: Manifest, batch_dir: Path) -> pd.DataFrame:
    """The set's held-out rows, recomputed from its batch files as training split them."""
    rows = read_rows(batch_paths(batch_dir, manifest.batch_files))
    _, held_out = split_rows(rows, manifest.split.seed, manifest.split.test_percent)
    return held_out
