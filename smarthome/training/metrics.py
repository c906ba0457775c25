"""Held-out metrics of the fitted models and of their baselines, as Spark computes them."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smarthome.training.pipelines import PREDICTION

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
            F.col(PREDICTION).cast("int"),
            vector_to_array(F.col("probability"))[1],
        ).collect()
        confusion: dict[tuple[int, int], int] = {}
        for y, p, _ in scored:
            confusion[(y, p)] = confusion.get((y, p), 0) + 1
    else:
        rows = predictions.groupBy(label, PREDICTION).count().collect()
        confusion = {(int(r[label]), int(r[PREDICTION])): int(r["count"]) for r in rows}
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
    y, p = F.col(label).cast("double"), F.col(PREDICTION)
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
