"""Train the three models of one set and measure them honestly on a held-out split.

The split is a hash of ``UserID`` (``pmod(xxhash64(UserID, seed), 100) < test_percent`` is
held out) rather than ``randomSplit``: it does not depend on how Spark partitioned the rows,
so a test recomputes it exactly, and a device stays on the same side in every cumulative set,
so the learning curve compares like with like. Every saved model is the fit on the training
split, so the manifest's held-out metrics are recomputable from what is saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator, ClusteringEvaluator
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smarthome.contracts.records import EFFICIENCY_LABEL, MALFUNCTION_LABEL
from smarthome.training import features

#: the saved efficiency forest: reaches >= 0.95 held-out accuracy on the full dataset, which is
#: about this dataset's ceiling (its label is a threshold rule with ~5% of labels flipped)
EFFICIENCY_PARAMS: dict[str, Any] = {"numTrees": 100, "maxDepth": 7, "maxBins": 128}
#: how Spark fits the forest, not which forest: node ids cached per row instead of every row
#: walking every tree from its root at each level (same trees for the same data and seed)
FAST_FOREST_PARAMS: dict[str, Any] = {"cacheNodeIds": True}
#: Spark SQL settings for the training jobs (``--legacy-speed`` keeps the session's): adaptive
#: execution re-plans every shuffle as a separate job, pure overhead on a few thousand rows
FAST_SQL_CONF: dict[str, str] = {"spark.sql.adaptive.enabled": "false"}
#: a set's rows go into one partition per this many (fewer than Spark's reader makes, never
#: more): the forest aggregates and shuffles its per-node statistics once per partition at every
#: level, so a few thousand rows in three partitions cost a warm set about a second more than in
#: one. With one partition the forest's bootstrap and KMeans' seeding depend only on the rows and
#: their order, not on how the reader split the files (Spark seeds them per partition)
ROWS_PER_PARTITION = 50_000
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
    #: the settings before issue 14 (for the benchmark's before/after): same models, slower
    legacy_speed: bool = False
    #: rows per partition of a set's rows (:data:`ROWS_PER_PARTITION`); None: as Spark reads
    #: them (before issue 14). It decides the bootstraps, so the forest; ``legacy_speed`` not
    rows_per_partition: int | None = ROWS_PER_PARTITION

    @classmethod
    def before_issue_14(cls, **settings: Any) -> TrainConfig:
        """The settings of ``--legacy-speed``: issue 14's speed-ups off, the rows as read."""
        return cls(legacy_speed=True, rows_per_partition=None, **settings)

    @property
    def efficiency_params(self) -> dict[str, Any]:
        params = dict(QUICK_EFFICIENCY_PARAMS if self.quick else EFFICIENCY_PARAMS)
        return params if self.legacy_speed else params | FAST_FOREST_PARAMS

    @property
    def sql_conf(self) -> dict[str, str]:
        return {} if self.legacy_speed else dict(FAST_SQL_CONF)

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
    """Plain floats (JSON), full precision: tests compare them with recomputed values."""
    return {k: float(v) for k, v in metrics.items()}


#: a held-out split up to this many rows is scored on the driver from one collect; a larger
#: one with Spark's evaluator (six jobs, but no row leaves the executors)
DRIVER_METRICS_ROWS = 100_000
#: BinaryClassificationEvaluator's default: above twice this many distinct scores Spark
#: down-samples the ROC curve by partition, which only Spark itself can reproduce
AUC_BINS = 1000


def classification_metrics(
    predictions: DataFrame, label: str, majority_class: int, on_driver: bool
) -> tuple[dict[str, float], dict[str, float]]:
    """(model, majority-class baseline) metrics of a transformed held-out split.

    accuracy, weighted F1 (as Spark's ``f1``) and the F1 of class 1 come from one confusion
    matrix; ROC AUC is Spark's BinaryClassificationEvaluator's. ``on_driver``: the split is
    collected once and both are computed here, as Spark computes them (one job, not six).
    """
    scored = None
    if on_driver:
        scored = predictions.select(
            F.col(label).cast("int"),
            F.col(features.PREDICTION).cast("int"),
            vector_to_array(F.col("probability"))[1],
        ).collect()
        confusion: dict[tuple[int, int], int] = {}
        for y, p, _ in scored:
            confusion[(y, p)] = confusion.get((y, p), 0) + 1
    else:
        rows = predictions.groupBy(label, features.PREDICTION).count().collect()
        confusion = {(int(r[label]), int(r[features.PREDICTION])): int(r["count"]) for r in rows}
    total = sum(confusion.values())
    classes = sorted({c for pair in confusion for c in pair} | {0, 1})
    actual = {c: sum(n for (y, _), n in confusion.items() if y == c) for c in classes}

    def scores(predicted_as: Callable[[int, int], int]) -> dict[str, float]:
        table: dict[tuple[int, int], int] = {}
        for (y, p), n in confusion.items():
            key = (y, predicted_as(y, p))
            table[key] = table.get(key, 0) + n
        f1 = {}
        for c in classes:
            tp = table.get((c, c), 0)
            predicted = sum(n for (_, p), n in table.items() if p == c)
            f1[c] = 2 * tp / (actual[c] + predicted) if actual[c] + predicted else 0.0
        return {
            "accuracy": sum(table.get((c, c), 0) for c in classes) / total,
            "f1": sum(f1[c] * actual[c] for c in classes) / total,
            "f1_efficient": f1[1],
        }

    model = scores(lambda _y, p: p)
    auc = roc_auc([(score, y) for y, _, score in scored]) if scored is not None else None
    if auc is None:
        auc = BinaryClassificationEvaluator(
            labelCol=label, rawPredictionCol="probability", metricName="areaUnderROC"
        ).evaluate(predictions)
    model["roc_auc"] = auc
    baseline = {**scores(lambda _y, _p: majority_class), "roc_auc": 0.5}
    return model, baseline


def roc_auc(scored: list[tuple[float, int]]) -> float | None:
    """Area under the ROC curve of (score, label 0/1) pairs, as Spark's BinaryClassification-
    Metrics computes it: one point per distinct score, highest first, from (0, 0) to (1, 1),
    trapezoids between them. None where Spark's answer differs (one class only, or enough
    distinct scores for it to down-sample the curve)."""
    counts: dict[float, list[int]] = {}
    for score, y in scored:
        counts.setdefault(score, [0, 0])[0 if y == 1 else 1] += 1
    positives = sum(pos for pos, _ in counts.values())
    negatives = len(scored) - positives
    if not positives or not negatives or len(counts) >= 2 * AUC_BINS:
        return None
    area, x, y, tp, fp = 0.0, 0.0, 0.0, 0, 0
    for score in sorted(counts, reverse=True):
        tp, fp = tp + counts[score][0], fp + counts[score][1]
        x2, y2 = fp / negatives, tp / positives
        area += (x2 - x) * (y2 + y) / 2.0
        x, y = x2, y2
    return area + (1.0 - x) * (1.0 + y) / 2.0


def regression_metrics(
    predictions: DataFrame, label: str, mean: float
) -> tuple[dict[str, float], dict[str, float]]:
    """(model, predict-the-training-mean) RMSE, MAE and R² of a held-out split, in one job.

    R² is ``1 - SSE/SST`` with SST around the held-out mean, as Spark's RegressionEvaluator.
    """
    y, p = F.col(label).cast("double"), F.col(features.PREDICTION)
    row = predictions.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum((p - y) ** 2).alias("sse"),
        F.sum(F.abs(p - y)).alias("sae"),
        F.sum((F.lit(mean) - y) ** 2).alias("sse0"),
        F.sum(F.abs(F.lit(mean) - y)).alias("sae0"),
        F.sum(y).alias("sy"),
        F.sum(y * y).alias("syy"),
    ).first()
    n = row["n"]
    sst = row["syy"] - row["sy"] ** 2 / n

    def metrics(sse: float, sae: float) -> dict[str, float]:
        r2 = 1 - sse / sst if sst > 0 else 0.0
        return {"rmse": (sse / n) ** 0.5, "mae": sae / n, "r2": r2}

    return metrics(row["sse"], row["sae"]), metrics(row["sse0"], row["sae0"])


def train_efficiency(
    train: DataFrame,
    test: DataFrame,
    cfg: TrainConfig,
    majority_class: int,
    test_rows: int,
    fitted: Callable[[PipelineModel], object] = lambda _model: None,
    device_types: list[str] | None = None,
) -> tuple[PipelineModel, dict[str, Any]]:
    """The efficiency classifier (fit on train) and its manifest section.

    ``fitted`` gets the model as soon as it is fitted, before the held-out metrics;
    ``device_types``: train's DeviceType labels, counted already (else the indexer is fitted).
    """
    start = time.perf_counter()
    pipeline = features.efficiency_pipeline(
        cfg.seed,
        device_types=device_types,
        lazy_trees=not cfg.legacy_speed,
        **cfg.efficiency_params,
    )
    model = pipeline.fit(train)
    seconds = time.perf_counter() - start
    fitted(model)
    metrics, baseline = classification_metrics(
        model.transform(test),
        EFFICIENCY_LABEL,
        majority_class,
        on_driver=not cfg.legacy_speed and test_rows <= DRIVER_METRICS_ROWS,
    )
    forest = model.stages[-1]
    section = {
        "algorithm": "RandomForestClassifier",
        "label": EFFICIENCY_LABEL,
        "params": _params(pipeline.getStages()[-1]),
        "fit_on": "training split",
        "training_seconds": round(seconds, 3),
        "metrics": _round(metrics),
        "baseline": {"kind": f"majority class of the training split ({majority_class})"}
        | _round(baseline),
        "beats_baseline": metrics["accuracy"] > baseline["accuracy"],
        "feature_importances": [float(v) for v in forest.featureImportances.toArray()],
    }
    return model, section


def train_malfunction(
    train: DataFrame,
    test: DataFrame,
    cfg: TrainConfig,
    mean: float,
    device_types: list[str] | None = None,
) -> tuple[PipelineModel, dict[str, Any]]:
    """LinearRegression, or (when it is worse than the mean) a model predicting the mean."""
    start = time.perf_counter()
    model = features.malfunction_pipeline(device_types=device_types).fit(train)
    seconds = time.perf_counter() - start
    metrics, baseline = regression_metrics(model.transform(test), MALFUNCTION_LABEL, mean)
    tried = [{"algorithm": "LinearRegression", "params": {}, "metrics": _round(metrics)}]
    params: dict[str, Any] = {}
    if metrics["rmse"] > baseline["rmse"]:
        start = time.perf_counter()
        params = dict(MEAN_REGRESSION_PARAMS)
        if cfg.legacy_speed:
            model = features.malfunction_pipeline(**params).fit(train)
        else:  # the same feature stages, already fitted on the same rows: fit only the last one
            prepared = PipelineModel(model.stages[:-1])
            regression = features.malfunction_regression(**params).fit(prepared.transform(train))
            model = PipelineModel([*prepared.stages, regression])
        seconds = time.perf_counter() - start
        metrics, _ = regression_metrics(model.transform(test), MALFUNCTION_LABEL, mean)
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


def train_clustering(
    df: DataFrame,
    cfg: TrainConfig,
    device_types: list[str] | None = None,
    count_sizes: bool = True,
) -> tuple[PipelineModel, dict[str, Any]]:
    """KMeans on every row (no label, so no held-out split), silhouette on every row.

    ``count_sizes=False`` leaves ``cluster_sizes`` to the caller, who counts the segments
    anyway (the summary would count them in a Spark job of its own).
    """
    start = time.perf_counter()
    pipeline = features.clustering_pipeline(
        cfg.k, cfg.seed, device_types=device_types, **cfg.kmeans_params
    )
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
    }
    if count_sizes:
        section["cluster_sizes"] = [int(s) for s in kmeans.summary.clusterSizes]
    return model, section
