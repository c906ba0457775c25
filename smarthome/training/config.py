"""What a training run trains with (recorded in every manifest) and the models' settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the saved efficiency forest: reaches >= 0.95 held-out accuracy on the full dataset, which is
#: about this dataset's ceiling (its label is a threshold rule with ~5% of labels flipped)
EFFICIENCY_PARAMS: dict[str, Any] = {"numTrees": 100, "maxDepth": 7, "maxBins": 128}
#: how Spark fits the forest, not which forest: node ids cached per row instead of every row
#: walking every tree from its root at each level (same trees for the same data and seed)
FOREST_FIT_PARAMS: dict[str, Any] = {"cacheNodeIds": True}
#: Spark SQL settings for the training jobs: adaptive execution re-plans every shuffle as a
#: separate job, pure overhead on a few thousand rows
TRAINING_SQL_CONF: dict[str, str] = {"spark.sql.adaptive.enabled": "false"}
#: a set's rows go into one partition per this many (fewer than Spark's reader makes, never
#: more): the forest aggregates and shuffles its per-node statistics once per partition at every
#: level, so a few thousand rows in three partitions cost a warm set about a second more than in
#: one. With one partition the forest's bootstrap and KMeans' seeding depend only on the rows and
#: their order, not on how the reader split the files (Spark seeds them per partition)
ROWS_PER_PARTITION = 50_000
#: small models for smoke tests (``--quick``): same pipeline, a fraction of the work
QUICK_EFFICIENCY_PARAMS: dict[str, Any] = {"numTrees": 8, "maxDepth": 4, "maxBins": 32}
#: the segment counts tried when no k is given: the one whose segments have the highest
#: silhouette (Spark's ClusteringEvaluator, on every row) is kept, the smaller k on a tie. Few
#: enough to read, and each is one more small KMeans fit per set
K_CANDIDATES: tuple[int, ...] = (3, 4, 5, 6)
#: the segment count of ``--quick`` sets when no k is given: no search, the k the full
#: dataset's search chooses
QUICK_K = 4
#: a LinearRegression whose huge L1 penalty zeroes every coefficient: predicts the train mean
MEAN_REGRESSION_PARAMS: dict[str, Any] = {"regParam": 1e9, "elasticNetParam": 1.0}


@dataclass(frozen=True)
class TrainConfig:
    """What a run trains with; recorded in every manifest."""

    #: the number of segments; None: chosen from :data:`K_CANDIDATES` by silhouette
    k: int | None = None
    seed: int = 42
    test_percent: int = 20
    quick: bool = False
    #: rows per partition of a set's rows (:data:`ROWS_PER_PARTITION`); None: as Spark reads
    #: them. It decides the forest's bootstraps, so the forest
    rows_per_partition: int | None = ROWS_PER_PARTITION

    @property
    def efficiency_params(self) -> dict[str, Any]:
        params = QUICK_EFFICIENCY_PARAMS if self.quick else EFFICIENCY_PARAMS
        return params | FOREST_FIT_PARAMS

    @property
    def sql_conf(self) -> dict[str, str]:
        return dict(TRAINING_SQL_CONF)

    @property
    def k_candidates(self) -> tuple[int, ...]:
        """The segment counts to fit: the one given, else :data:`QUICK_K` for a quick set,
        else :data:`K_CANDIDATES`."""
        if self.k is not None:
            return (self.k,)
        return (QUICK_K,) if self.quick else K_CANDIDATES

    @property
    def kmeans_params(self) -> dict[str, Any]:
        return {"maxIter": 10 if self.quick else 30}
