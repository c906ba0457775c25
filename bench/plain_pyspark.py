"""The reference for ``bench_training``: one model set as a user would write it in plain pyspark.

Straight from Spark's ML examples: read the batch files, split, ``Pipeline.fit`` the same three
pipelines (same stages, same estimator settings), evaluate each with Spark's evaluators, and
``PipelineModel.save`` them. No step of the project's own (one-job split, label metadata,
side-by-side fits, the scoring export) is used, so the difference is what those steps buy.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.ml import Pipeline
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import (
    ClusteringEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smarthome.contracts.records import (
    DEVICE_FEATURES,
    EFFICIENCY_LABEL,
    MALFUNCTION_FEATURES,
    MALFUNCTION_LABEL,
    NUMERIC_FEATURES,
)
from smarthome.training.config import EFFICIENCY_PARAMS, TrainConfig


def _features(columns: list[str]) -> list:
    numeric = [c for c in columns if c != "DeviceType"]
    return [
        StringIndexer(inputCol="DeviceType", outputCol="DeviceTypeIndex", handleInvalid="keep"),
        OneHotEncoder(inputCols=["DeviceTypeIndex"], outputCols=["DeviceTypeVec"]),
        VectorAssembler(inputCols=["DeviceTypeVec", *numeric], outputCol="rawFeatures"),
        StandardScaler(inputCol="rawFeatures", outputCol="features", withMean=True, withStd=True),
    ]


def _segment_features() -> list:
    return [
        VectorAssembler(inputCols=NUMERIC_FEATURES, outputCol="rawFeatures"),
        StandardScaler(inputCol="rawFeatures", outputCol="features", withMean=True, withStd=True),
    ]


def train_set(spark: SparkSession, batch_files: list[Path], out: Path, cfg: TrainConfig) -> dict:
    """Fit, evaluate and save the three pipelines; their held-out figures."""
    df = spark.read.csv([str(p) for p in batch_files], header=True, inferSchema=True)
    held = F.pmod(F.xxhash64("UserID", F.lit(cfg.seed)), 100) < cfg.test_percent
    train, test = df.where(~held).cache(), df.where(held).cache()

    forest = RandomForestClassifier(labelCol=EFFICIENCY_LABEL, seed=cfg.seed, **EFFICIENCY_PARAMS)
    efficiency = Pipeline(stages=[*_features(DEVICE_FEATURES), forest]).fit(train)
    accuracy = MulticlassClassificationEvaluator(
        labelCol=EFFICIENCY_LABEL, metricName="accuracy"
    ).evaluate(efficiency.transform(test))
    efficiency.save(str(out / "efficiency"))

    regression = LinearRegression(labelCol=MALFUNCTION_LABEL)
    malfunction = Pipeline(stages=[*_features(MALFUNCTION_FEATURES), regression]).fit(train)
    rmse = RegressionEvaluator(labelCol=MALFUNCTION_LABEL, metricName="rmse").evaluate(
        malfunction.transform(test)
    )
    malfunction.save(str(out / "malfunction"))

    # the segments: every k of the range fitted as a pipeline, the best silhouette kept
    best = None
    for k in cfg.k_candidates:
        kmeans = KMeans(k=k, seed=cfg.seed, **cfg.kmeans_params)
        fitted = Pipeline(stages=[*_segment_features(), kmeans]).fit(df)
        score = ClusteringEvaluator().evaluate(fitted.transform(df))
        if best is None or score > best[0]:
            best = (score, fitted)
    silhouette, clustering = best
    clustering.save(str(out / "clustering"))

    train.unpersist()
    test.unpersist()
    return {"accuracy": accuracy, "rmse": rmse, "silhouette": silhouette}
