"""The held-out classification metrics computed on the driver equal Spark's own evaluators."""

from __future__ import annotations

import random

import pytest

from smarthome.training.metrics import AUC_BINS, roc_auc


def test_roc_auc_of_a_small_case_with_ties() -> None:
    # ROC points (0,0) (0,1/2) (1/2,1) (1,1): the tied 0.8s are one point, not two
    scored = [(0.9, 1), (0.8, 0), (0.8, 1), (0.3, 0)]
    assert roc_auc(scored) == pytest.approx(0.875, abs=1e-15)


def test_roc_auc_leaves_to_spark_what_only_spark_answers() -> None:
    assert roc_auc([(0.9, 1), (0.2, 1)]) is None  # one class only
    many = [(i / (3 * AUC_BINS), i % 2) for i in range(2 * AUC_BINS)]
    assert roc_auc(many) is None  # Spark down-samples this curve by partition


@pytest.mark.spark
def test_driver_metrics_equal_sparks_evaluators(spark) -> None:
    from pyspark.ml.linalg import Vectors

    from smarthome.training.metrics import classification_metrics

    rng = random.Random(7)
    rows = []
    for _ in range(1500):
        label = rng.random() < 0.4
        p = min(1.0, max(0.0, round(rng.gauss(0.65 if label else 0.35, 0.2), 2)))  # many ties
        rows.append((float(label), float(p > 0.5), Vectors.dense([1 - p, p])))
    frame = spark.createDataFrame(rows, ["label", "prediction", "probability"]).repartition(3)
    on_driver, baseline = classification_metrics(frame, "label", 0, on_driver=True)
    in_spark, baseline_spark = classification_metrics(frame, "label", 0, on_driver=False)
    assert set(on_driver) == {"accuracy", "f1", "f1_efficient", "roc_auc"}
    for name, value in in_spark.items():
        assert on_driver[name] == pytest.approx(value, abs=1e-12), name
    assert baseline == baseline_spark
    assert 0.6 < on_driver["roc_auc"] < 1.0
