"""The parts of a set being built that pass between its steps: the split rows and the fitted
models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from smarthome.contracts.clusters import Clusters


@dataclass
class Split:
    """The held-out split of a set's rows, cached, with what the baselines need."""

    train: DataFrame
    test: DataFrame
    every_row: DataFrame  # train and test together, as the models read them (the clustering's)
    train_rows: int
    test_rows: int
    majority: int  # the efficiency classifier's baseline: the majority class of train
    malfunction_mean: float  # the regressor's baseline: the train mean
    #: train's DeviceType labels in StringIndexer's order (counted in the split's job, so the
    #: indexers need no job of their own); None: the indexers are fitted
    train_device_types: list[str] | None = None

    def release(self) -> None:
        self.train.unpersist()
        self.test.unpersist()


@dataclass
class Fitted:
    """The three fitted models, their manifest sections, exports and the segment profile."""

    models: dict[str, Any]
    sections: dict[str, dict[str, Any]]
    exports: dict[str, Any]
    clusters: Clusters

    def summary(self) -> str:
        return (
            f"accuracy {self.sections['efficiency']['metrics']['accuracy']:.4f}, "
            f"RMSE {self.sections['malfunction']['metrics']['rmse']:.4f}, "
            f"silhouette {self.sections['clustering']['metrics']['silhouette']:.4f}"
        )
