"""Fit the three models of a set and measure them honestly on the held-out split.

Every saved model is the fit on the training split, so the manifest's held-out metrics are
recomputable from what is saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.sql import DataFrame

from smarthome.contracts.records import EFFICIENCY_LABEL, MALFUNCTION_LABEL
from smarthome.training import pipelines
from smarthome.training.config import MEAN_REGRESSION_PARAMS, TrainConfig
from smarthome.training.metrics import (
    DRIVER_METRICS_ROWS,
    classification_metrics,
    regression_metrics,
)

#: "beats the mean" means an RMSE at least this much lower than the mean's, relatively
BEATS_MARGIN = 0.01


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
    pipeline = pipelines.efficiency_pipeline(
        cfg.seed, device_types=device_types, **cfg.efficiency_params
    )
    model = pipeline.fit(train)
    seconds = time.perf_counter() - start
    fitted(model)
    metrics, baseline = classification_metrics(
        model.transform(test),
        EFFICIENCY_LABEL,
        majority_class,
        on_driver=test_rows <= DRIVER_METRICS_ROWS,
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
    model = pipelines.malfunction_pipeline(device_types=device_types).fit(train)
    seconds = time.perf_counter() - start
    metrics, baseline = regression_metrics(model.transform(test), MALFUNCTION_LABEL, mean)
    tried = [{"algorithm": "LinearRegression", "params": {}, "metrics": _round(metrics)}]
    params: dict[str, Any] = {}
    if metrics["rmse"] > baseline["rmse"]:
        start = time.perf_counter()
        params = dict(MEAN_REGRESSION_PARAMS)
        # the same feature stages, already fitted on the same rows: fit only the last one
        prepared = PipelineModel(model.stages[:-1])
        regression = pipelines.malfunction_regression(**params).fit(prepared.transform(train))
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
    df: DataFrame, cfg: TrainConfig, count_sizes: bool = True
) -> tuple[PipelineModel, dict[str, Any]]:
    """KMeans on every row (no label, so no held-out split), k chosen by silhouette.

    The behaviour columns are standardised once; KMeans is fitted on them for each of
    ``cfg.k_candidates`` and the fit whose segments have the highest silhouette (on every row,
    Spark's ClusteringEvaluator) is kept, the smaller k on a tie. The saved model is the
    feature stages plus that KMeans: one pipeline, as ``Pipeline.fit`` would give it.
    ``count_sizes=False`` leaves ``cluster_sizes`` to the caller, who counts the segments
    anyway (the summary would count them in a Spark job of its own).
    """
    start = time.perf_counter()
    prepared = Pipeline(stages=pipelines.segment_feature_stages()).fit(df)
    scaled = prepared.transform(df).select(pipelines.FEATURES).cache()

    def fit_candidate(k: int) -> tuple[float, Any, Any]:
        estimator = pipelines.segment_kmeans(k, cfg.seed, **cfg.kmeans_params)
        kmeans = estimator.fit(scaled)
        evaluator = ClusteringEvaluator(
            featuresCol=pipelines.FEATURES, predictionCol=pipelines.PREDICTION
        )
        return float(evaluator.evaluate(kmeans.transform(scaled))), estimator, kmeans

    # each candidate is a chain of small Spark jobs, mostly scheduling: fitted side by side
    # they overlap on the cores (each fit is seeded, so the result does not depend on it)
    try:
        with ThreadPoolExecutor(max_workers=len(cfg.k_candidates)) as pool:
            fits = list(pool.map(fit_candidate, cfg.k_candidates))
    finally:
        scaled.unpersist()
    tried: list[dict[str, Any]] = []
    best: tuple[float, Any, Any] | None = None
    for k, fit in zip(cfg.k_candidates, fits, strict=True):
        tried.append({"k": k, "silhouette": fit[0]})
        if best is None or fit[0] > best[0]:  # strictly: the smaller k on a tie
            best = fit
    assert best is not None  # k_candidates is never empty
    silhouette, estimator, kmeans = best
    model = PipelineModel([*prepared.stages, kmeans])
    seconds = time.perf_counter() - start
    k = kmeans.getK()
    section = {
        "algorithm": "KMeans",
        "params": _params(estimator),
        "fit_on": "all rows",
        "training_seconds": round(seconds, 3),
        "metrics": {"silhouette": silhouette},
        "baseline": {"kind": "none (unsupervised; silhouette ranges -1..1, higher is better)"},
        "k": k,
        "features": list(pipelines.SEGMENT_FEATURES),
        "k_selection": {
            "rule": "highest silhouette on every row, the smaller k on a tie"
            if len(tried) > 1
            else "given (--k)"
            if cfg.k is not None
            else "fixed for quick sets (--quick)",
            "tried": tried,
        },
    }
    if count_sizes:
        section["cluster_sizes"] = [int(s) for s in kmeans.summary.clusterSizes]
    return model, section
