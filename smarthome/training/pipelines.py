"""The three Spark ML pipelines (DESIGN §6): feature stages plus an estimator.

The two predictors: StringIndexer(handleInvalid='keep') -> OneHotEncoder -> VectorAssembler ->
StandardScaler -> estimator. The segments: VectorAssembler -> StandardScaler -> KMeans on the
behaviour columns only (:data:`SEGMENT_FEATURES`). The scorer without Spark
(``smarthome/scoring/``) supports exactly these stage types, so keep to them.
"""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import (
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.ml.regression import LinearRegression
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smarthome.contracts.records import (
    DEVICE_FEATURES,
    EFFICIENCY_LABEL,
    MALFUNCTION_FEATURES,
    MALFUNCTION_LABEL,
    NUMERIC_FEATURES,
)

FEATURES = "features"
PREDICTION = "prediction"
#: what the segments are made of: how a device is used, never its type. A one-hot DeviceType
#: among the coordinates dominates KMeans' distances (five 0/1 columns, standardised, against
#: five numbers), and the segments become the device types again; the type mix of each segment
#: is described instead (``analysis/segments.py``)
SEGMENT_FEATURES: list[str] = list(NUMERIC_FEATURES)


def feature_stages(columns: list[str], device_types: list[str] | None = None) -> list[Any]:
    """DeviceType one-hot + the numeric columns, standardised (mean 0, std 1).

    ``device_types``: the DeviceType labels in StringIndexer's order, already counted
    (:func:`labels_by_frequency`); the indexer is then built from them instead of fitted.
    """
    numeric = [c for c in columns if c != "DeviceType"]
    indexer = dict(inputCol="DeviceType", outputCol="DeviceTypeIndex", handleInvalid="keep")
    return [
        StringIndexer(**indexer)
        if device_types is None
        else StringIndexerModel.from_labels(device_types, **indexer),
        OneHotEncoder(inputCols=["DeviceTypeIndex"], outputCols=["DeviceTypeVec"]),
        VectorAssembler(inputCols=["DeviceTypeVec", *numeric], outputCol="rawFeatures"),
        StandardScaler(inputCol="rawFeatures", outputCol=FEATURES, withMean=True, withStd=True),
    ]


def labels_by_frequency(counts: dict[str, int]) -> list[str]:
    """The labels a StringIndexer (``frequencyDesc``) fits on values seen ``counts`` times:
    most frequent first, ties in string order. Counting them in a job that runs anyway saves
    the indexer's own Spark job, and the indexer is the same."""
    return sorted((label for label, n in counts.items() if n > 0), key=lambda v: (-counts[v], v))


#: the efficiency label's classes, as Spark ML's column metadata: a binary label by the record
#: schema (``Record.SmartHomeEfficiency``, 0 or 1)
EFFICIENCY_CLASSES_METADATA: dict[str, Any] = {"ml_attr": {"type": "nominal", "num_vals": 2}}


def model_input(df: DataFrame) -> DataFrame:
    """``df`` with its numeric features as doubles and its efficiency label marked binary.

    The doubles are the values VectorAssembler would cast them to itself, so the same models.
    Its own cast names the column after the stage's random uid, which makes every new
    pipeline's generated code differ: Spark generated and compiled ~30 queries again in every
    set (Janino, then the JIT on top). Without the label's metadata the forest counts its
    classes in a Spark job of its own (``max(label) + 1``) before anything else, on the set's
    longest path; with it, a set that holds only one class still fits a binary classifier.
    """
    numeric = set(NUMERIC_FEATURES)

    def column(name: str) -> Column:
        if name == EFFICIENCY_LABEL:
            return F.col(name).alias(name, metadata=EFFICIENCY_CLASSES_METADATA)
        return F.col(name).cast("double").alias(name) if name in numeric else F.col(name)

    return df.select(*[column(c) for c in df.columns])


def efficiency_pipeline(
    seed: int, device_types: list[str] | None = None, **params: Any
) -> Pipeline:
    """RandomForestClassifier for SmartHomeEfficiency on DEVICE_FEATURES."""
    forest = RandomForestClassifier(
        featuresCol=FEATURES, labelCol=EFFICIENCY_LABEL, predictionCol=PREDICTION, seed=seed
    )
    forest.setParams(**params)
    return Pipeline(stages=[*feature_stages(DEVICE_FEATURES, device_types), forest])


def malfunction_pipeline(device_types: list[str] | None = None, **params: Any) -> Pipeline:
    """LinearRegression for MalfunctionIncidents on MALFUNCTION_FEATURES.

    With a huge L1 penalty (``regParam=1e9, elasticNetParam=1``) every coefficient is 0 and the
    model predicts the training mean: the honest fallback when nothing beats the mean.
    """
    return Pipeline(
        stages=[
            *feature_stages(MALFUNCTION_FEATURES, device_types),
            malfunction_regression(**params),
        ]
    )


def malfunction_regression(**params: Any) -> LinearRegression:
    """The last stage of :func:`malfunction_pipeline`."""
    regression = LinearRegression(
        featuresCol=FEATURES, labelCol=MALFUNCTION_LABEL, predictionCol=PREDICTION
    )
    return regression.setParams(**params)


def segment_feature_stages() -> list[Any]:
    """The behaviour columns assembled and standardised (mean 0, std 1): each counts alike."""
    return [
        VectorAssembler(inputCols=SEGMENT_FEATURES, outputCol="rawFeatures"),
        StandardScaler(inputCol="rawFeatures", outputCol=FEATURES, withMean=True, withStd=True),
    ]


def segment_kmeans(k: int, seed: int, **params: Any) -> KMeans:
    """The last stage of :func:`clustering_pipeline`."""
    kmeans = KMeans(featuresCol=FEATURES, predictionCol=PREDICTION, k=k, seed=seed)
    return kmeans.setParams(**params)


def clustering_pipeline(k: int, seed: int, **params: Any) -> Pipeline:
    """KMeans segments on :data:`SEGMENT_FEATURES` (standardised, so no column dominates)."""
    return Pipeline(stages=[*segment_feature_stages(), segment_kmeans(k, seed, **params)])
