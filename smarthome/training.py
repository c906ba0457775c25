"""Train the three models of one set and measure them honestly on a held-out split.

The split is a hash of ``UserID`` (``pmod(xxhash64(UserID, seed), 100) < test_percent`` is
held out) rather than ``randomSplit``: it does not depend on how Spark partitioned the rows,
so a test recomputes it exactly, and a device stays on the same side in every cumulative set,
so the learning curve compares like with like. Every saved model is the fit on the training
split, so the manifest's held-out metrics are recomputable from what is saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    ClusteringEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from . import features
from .schema import EFFICIENCY_LABEL, MALFUNCTION_LABEL

#: the saved efficiency forest: reaches >= 0.95 held-out accuracy on the full dataset, which is
#: about this dataset's ceiling (its label is a threshold rule with ~5% of labels flipped)
EFFICIENCY_PARAMS: dict[str, Any] = {"numTrees": 100, "maxDepth": 7, "maxBins": 128}
#: small models for smoke tests (``--quick``): same pipeline, a fraction of the work
QUICK_EFFICIENCY_PARAMS: dict[str, Any] = {"numTrees": 8, "maxDepth": 4, "maxBins": 32}
#: a LinearRegression whose huge L1 penalty zeroes every coefficient: predicts the train mean
MEAN_REGRESSION_PARAMS: dict[str, Any] = {"regParam": 1e9, "elasticNetParam": 1.0}
#: "beats the mean" means an RMSE at least this much lower than the mean's, relatively
BEATS_MARGIN = 0.01


@dataclass(frozen=True)
class TrainConfig:
    """What a run trains with; recorded in every manifest."""

    k: int = 4
    seed: int = 42
    test_percent: int = 20
    quick: bool = False

    @property
    def efficiency_params(self) -> dict[str, Any]:
        return dict(QUICK_EFFICIENCY_PARAMS if self.quick else EFFICIENCY_PARAMS)

    @property
    def kmeans_params(self) -> dict[str, Any]:
        return {"maxIter": 10 if self.quick else 30}


def held_out(seed: int, test_percent: int) -> Column:
    """True for the rows of the held-out split (a pure function of UserID and seed)."""
    return F.pmod(F.xxhash64(F.col("UserID"), F.lit(seed)), F.lit(100)) < F.lit(test_percent)


def split(df: DataFrame, seed: int, test_percent: int) -> tuple[DataFrame, DataFrame]:
    """(train, test) of ``df`` by :func:`held_out`."""
    flag = held_out(seed, test_percent)
    return df.where(~flag), df.where(flag)


def _params(stage: Any) -> dict[str, Any]:
    """The explicitly set params of an estimator/model, JSON-able."""
    out = {}
    for param, value in stage.extractParamMap().items():
        if stage.isSet(param):
            ok = isinstance(value, (int, float, str, bool)) or value is None
            out[param.name] = value if ok else str(value)
    return out


def _round(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def classification_metrics(predictions: DataFrame, label: str) -> dict[str, float]:
    """accuracy, weighted F1, F1 of class 1, ROC AUC of a transformed held-out split."""
    multi = MulticlassClassificationEvaluator(labelCol=label, predictionCol=features.PREDICTION)
    auc = BinaryClassificationEvaluator(
        labelCol=label, rawPredictionCol="probability", metricName="areaUnderROC"
    )
    return {
        "accuracy": multi.evaluate(predictions, {multi.metricName: "accuracy"}),
        "f1": multi.evaluate(predictions, {multi.metricName: "f1"}),
        "f1_efficient": multi.evaluate(
            predictions, {multi.metricName: "fMeasureByLabel", multi.metricLabel: 1.0}
        ),
        "roc_auc": auc.evaluate(predictions),
    }


def regression_metrics(predictions: DataFrame, label: str) -> dict[str, float]:
    """RMSE, MAE and R² of a transformed held-out split."""
    ev = RegressionEvaluator(labelCol=label, predictionCol=features.PREDICTION)
    return {m: ev.evaluate(predictions, {ev.metricName: m}) for m in ("rmse", "mae", "r2")}


def train_efficiency(
    train: DataFrame, test: DataFrame, cfg: TrainConfig
) -> tuple[PipelineModel, dict[str, Any]]:
    """The efficiency classifier (fit on train) and its manifest section."""
    start = time.perf_counter()
    pipeline = features.efficiency_pipeline(cfg.seed, **cfg.efficiency_params)
    model = pipeline.fit(train)
    seconds = time.perf_counter() - start
    metrics = classification_metrics(model.transform(test), EFFICIENCY_LABEL)
    majority = train.groupBy(EFFICIENCY_LABEL).count().orderBy(F.desc("count")).first()
    majority_class = int(majority[EFFICIENCY_LABEL]) if majority else 0
    constant = test.withColumn(features.PREDICTION, F.lit(float(majority_class)))
    multi = MulticlassClassificationEvaluator(
        labelCol=EFFICIENCY_LABEL, predictionCol=features.PREDICTION
    )
    baseline = {
        "kind": f"majority class of the training split ({majority_class})",
        "accuracy": multi.evaluate(constant, {multi.metricName: "accuracy"}),
        "f1": multi.evaluate(constant, {multi.metricName: "f1"}),
        "roc_auc": 0.5,
    }
    forest = model.stages[-1]
    section = {
        "algorithm": type(pipeline.getStages()[-1]).__name__,
        "label": EFFICIENCY_LABEL,
        "params": _params(pipeline.getStages()[-1]),
        "fit_on": "training split",
        "training_seconds": round(seconds, 3),
        "metrics": _round(metrics),
        "baseline": baseline,
        "beats_baseline": metrics["accuracy"] > baseline["accuracy"],
        "feature_importances": [float(v) for v in forest.featureImportances.toArray()],
    }
    return model, section


def train_malfunction(
    train: DataFrame, test: DataFrame, cfg: TrainConfig
) -> tuple[PipelineModel, dict[str, Any]]:
    """LinearRegression, or (when it is worse than the mean) a model predicting the mean."""
    start = time.perf_counter()
    model = features.malfunction_pipeline().fit(train)
    seconds = time.perf_counter() - start
    metrics = regression_metrics(model.transform(test), MALFUNCTION_LABEL)
    mean = float(train.agg(F.avg(MALFUNCTION_LABEL)).first()[0])
    baseline = regression_metrics(
        test.withColumn(features.PREDICTION, F.lit(mean)), MALFUNCTION_LABEL
    )
    tried = [{"algorithm": "LinearRegression", "params": {}, "metrics": _round(metrics)}]
    params: dict[str, Any] = {}
    if metrics["rmse"] > baseline["rmse"]:
        start = time.perf_counter()
        params = dict(MEAN_REGRESSION_PARAMS)
        model = features.malfunction_pipeline(**params).fit(train)
        seconds = time.perf_counter() - start
        metrics = regression_metrics(model.transform(test), MALFUNCTION_LABEL)
    beats = metrics["rmse"] < baseline["rmse"] * (1 - BEATS_MARGIN)
    if beats:
        note = "LinearRegression predicts malfunction incidents better than the mean."
    elif params:
        note = (
            "No model tried beats predicting the training mean on the held-out split "
            f"(LinearRegression R² {tried[0]['metrics']['r2']:.3f}); the saved model predicts "
            f"the training mean ({mean:.3f}) for every device."
        )
    else:
        note = (
            f"LinearRegression is no better than predicting the training mean ({mean:.3f}) on the "
            f"held-out split (R² {metrics['r2']:.3f} vs {baseline['r2']:.3f}): "
            "these features carry almost no information about malfunctions."
        )
    section = {
        "algorithm": "LinearRegression",
        "label": MALFUNCTION_LABEL,
        "params": params,
        "fit_on": "training split",
        "training_seconds": round(seconds, 3),
        "metrics": _round(metrics),
        "baseline": {"kind": f"training mean ({mean:.6f})", "mean": mean, **_round(baseline)},
        "beats_baseline": bool(beats),
        "beats_baseline_rule": f"held-out RMSE at least {BEATS_MARGIN:.0%} below the mean's",
        "note": note,
        "tried": tried,
    }
    return model, section


def train_clustering(df: DataFrame, cfg: TrainConfig) -> tuple[PipelineModel, dict[str, Any]]:
    """KMeans on every row (no label, so no held-out split), silhouette on every row."""
    start = time.perf_counter()
    pipeline = features.clustering_pipeline(cfg.k, cfg.seed, **cfg.kmeans_params)
    model = pipeline.fit(df)
    seconds = time.perf_counter() - start
    predictions = model.transform(df)
    silhouette = ClusteringEvaluator(
        featuresCol=features.FEATURES, predictionCol=features.PREDICTION
    ).evaluate(predictions)
    kmeans = model.stages[-1]
    section = {
        "algorithm": "KMeans",
        "params": _params(pipeline.getStages()[-1]),
        "fit_on": "all rows",
        "training_seconds": round(seconds, 3),
        "metrics": {"silhouette": float(silhouette)},
        "baseline": {"kind": "none (unsupervised; silhouette ranges -1..1, higher is better)"},
        "k": cfg.k,
        "cluster_sizes": [int(s) for s in kmeans.summary.clusterSizes],
    }
    return model, section
