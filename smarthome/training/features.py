"""The three Spark ML pipelines (DESIGN §6), each the same feature stages plus an estimator.

StringIndexer(handleInvalid='keep') -> OneHotEncoder -> VectorAssembler -> StandardScaler ->
estimator. The scorer without Spark (``smarthome/scoring/``) supports exactly these stage
types, so keep to them.
"""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression

from smarthome.contracts.records import (
    DEVICE_FEATURES,
    EFFICIENCY_LABEL,
    MALFUNCTION_FEATURES,
    MALFUNCTION_LABEL,
)

FEATURES = "features"
PREDICTION = "prediction"


def feature_stages(columns: list[str]) -> list[Any]:
    """DeviceType one-hot + the numeric columns, standardised (mean 0, std 1)."""
    numeric = [c for c in columns if c != "DeviceType"]
    return [
        StringIndexer(inputCol="DeviceType", outputCol="DeviceTypeIndex", handleInvalid="keep"),
        OneHotEncoder(inputCols=["DeviceTypeIndex"], outputCols=["DeviceTypeVec"]),
        VectorAssembler(inputCols=["DeviceTypeVec", *numeric], outputCol="rawFeatures"),
        StandardScaler(inputCol="rawFeatures", outputCol=FEATURES, withMean=True, withStd=True),
    ]


def efficiency_pipeline(seed: int, **params: Any) -> Pipeline:
    """RandomForestClassifier for SmartHomeEfficiency on DEVICE_FEATURES."""
    forest = RandomForestClassifier(
        featuresCol=FEATURES, labelCol=EFFICIENCY_LABEL, predictionCol=PREDICTION, seed=seed
    )
    forest.setParams(**params)
    return Pipeline(stages=[*feature_stages(DEVICE_FEATURES), forest])


def malfunction_pipeline(**params: Any) -> Pipeline:
    """LinearRegression for MalfunctionIncidents on MALFUNCTION_FEATURES.

    With a huge L1 penalty (``regParam=1e9, elasticNetParam=1``) every coefficient is 0 and the
    model predicts the training mean: the honest fallback when nothing beats the mean.
    """
    return Pipeline(
        stages=[*feature_stages(MALFUNCTION_FEATURES), malfunction_regression(**params)]
    )


def malfunction_regression(**params: Any) -> LinearRegression:
    """The last stage of :func:`malfunction_pipeline`."""
    regression = LinearRegression(
        featuresCol=FEATURES, labelCol=MALFUNCTION_LABEL, predictionCol=PREDICTION
    )
    return regression.setParams(**params)


def clustering_pipeline(k: int, seed: int, **params: Any) -> Pipeline:
    """KMeans segments on DEVICE_FEATURES (standardised, so no column dominates)."""
    kmeans = KMeans(featuresCol=FEATURES, predictionCol=PREDICTION, k=k, seed=seed)
    kmeans.setParams(**params)
    return Pipeline(stages=[*feature_stages(DEVICE_FEATURES), kmeans])
