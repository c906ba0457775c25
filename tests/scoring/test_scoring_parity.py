"""Parity: the numpy scorer versus ``PipelineModel.transform`` (DESIGN §7), on real local Spark.

Each estimator training fits (random forest, linear regression, KMeans) is fitted small on the
whole dataset under several feature-stage settings, exported, round-tripped through JSON and
scored on all 5,403 rows plus edge rows: unseen and null device types, zeros, extreme
values, rows exactly on the trees' thresholds, rows a hair either side of the boundary
between two KMeans centers. Classes and clusters must be equal; probabilities and regression
values within 1e-9; and the same when each row is scored alone, as the API does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smarthome.contracts import scoring_file as spec
from smarthome.contracts.records import (
    DEVICE_FEATURES,
    DEVICE_TYPES,
    MALFUNCTION_FEATURES,
    NUMERIC_FEATURES,
)
from smarthome.scoring.model_set import ModelSet, PipelineScorer, ScoreResult
from smarthome.training.export import UnsupportedStageError, export_pipeline

pytestmark = [pytest.mark.spark, pytest.mark.slow]

EFF, MAL = "SmartHomeEfficiency", "MalfunctionIncidents"
TOL = 1e-9
#: few features, so the trees of the 'nominal' cases must split on the categorical DeviceType
NOMINAL_FEATURES = ["DeviceType", "UsageHoursPerDay", "UserPreferences"]


@pytest.fixture(scope="module")
def data(spark: Any, dataset_path: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The dataset as a Spark DataFrame (numbers as doubles) and as a list of row dicts."""
    frame = pd.read_csv(dataset_path)
    # a label that needs a split on the category itself (for the categorical-split case)
    frame["Nominal"] = (
        frame["DeviceType"].isin(["Camera", "Thermostat"]) & (frame["UsageHoursPerDay"] > 12)
    ).astype(float)
    rows = frame.to_dict("records")
    return _frame(spark, rows).cache(), rows


def _frame(spark: Any, rows: list[dict[str, Any]], first: int = 0) -> Any:
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    numbers = [*NUMERIC_FEATURES, EFF, "Nominal"]
    schema = StructType(
        [StructField("_row", LongType(), False), StructField("DeviceType", StringType(), True)]
        + [StructField(c, DoubleType(), True) for c in numbers]
    )
    data = [
        (i, row["DeviceType"], *(float(row.get(c, 0.0)) for c in numbers))
        for i, row in enumerate(rows, start=first)
    ]
    return spark.createDataFrame(data, schema)


def _pipeline(estimator: Any, features: list[str], variant: str) -> Any:
    """StringIndexer(keep) -> OneHotEncoder -> VectorAssembler -> StandardScaler -> estimator.

    ``variant`` picks the encoder/scaler settings, 'numbers' (VectorAssembler -> StandardScaler
    on numbers only, as the segments), or 'nominal' (index fed to the assembler directly, so
    trees see a categorical feature and make categorical splits: refused).
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler

    numbers = [c for c in features if c != "DeviceType"]
    if variant == "numbers":  # the segments' pipeline: no device-type stage at all
        assembler = VectorAssembler(inputCols=numbers, outputCol="raw")
        scaler = StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True)
        return Pipeline(stages=[assembler, scaler, estimator])
    indexer = StringIndexer(inputCol="DeviceType", outputCol="dt_index", handleInvalid="keep")
    if variant == "nominal":
        assembler = VectorAssembler(inputCols=["dt_index", *numbers], outputCol="features")
        return Pipeline(stages=[indexer, assembler, estimator])
    drop_last, invalid, with_mean, with_std = {
        "default": (True, "error", False, True),
        "keep-all": (False, "keep", True, True),
        "keep-drop": (True, "keep", True, False),
        "plain": (False, "error", False, False),
    }[variant]
    encoder = OneHotEncoder(
        inputCols=["dt_index"], outputCols=["dt_vec"], dropLast=drop_last, handleInvalid=invalid
    )
    assembler = VectorAssembler(inputCols=["dt_vec", *numbers], outputCol="raw")
    scaler = StandardScaler(
        inputCol="raw", outputCol="features", withMean=with_mean, withStd=with_std
    )
    return Pipeline(stages=[indexer, encoder, assembler, scaler, estimator])


def _estimators() -> dict[str, tuple[Callable[[], Any], list[str], str]]:
    from pyspark.ml import classification as c
    from pyspark.ml import clustering as k
    from pyspark.ml import regression as r

    def forest(depth: int, trees: int = 8) -> Callable[[], Any]:
        return lambda: c.RandomForestClassifier(
            labelCol=EFF, numTrees=trees, maxDepth=depth, seed=3
        )

    return {
        "forest": (forest(5), DEVICE_FEATURES, "default"),
        "forest-keep-drop": (forest(6, trees=5), DEVICE_FEATURES, "keep-drop"),
        "forest-plain": (forest(4, trees=3), DEVICE_FEATURES, "plain"),
        "linear": (lambda: r.LinearRegression(labelCol=MAL), MALFUNCTION_FEATURES, "keep-all"),
        "linear-default": (
            lambda: r.LinearRegression(labelCol=MAL),
            MALFUNCTION_FEATURES,
            "default",
        ),
        "linear-mean": (  # training's fallback: every coefficient 0, predicts the mean
            lambda: r.LinearRegression(labelCol=MAL, regParam=1e9, elasticNetParam=1.0),
            MALFUNCTION_FEATURES,
            "default",
        ),
        "kmeans": (lambda: k.KMeans(k=4, seed=1), DEVICE_FEATURES, "default"),
        "kmeans-numbers": (lambda: k.KMeans(k=5, seed=1), NUMERIC_FEATURES, "numbers"),
        "kmeans-cosine": (
            lambda: k.KMeans(k=3, seed=1, distanceMeasure="cosine"),
            DEVICE_FEATURES,
            "keep-all",
        ),
    }


# ---------------------------------------------------------------- edge rows


def _base_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[0], rows[1], rows[2], rows[3]]


def _generic_edges(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unseen/null device types, all zeros, extremes (24 h, 1e6), every device type."""
    edges = []
    for device in [*DEVICE_TYPES, "Toaster", None]:
        for values in (
            dict.fromkeys(NUMERIC_FEATURES, 0.0),
            {**dict.fromkeys(NUMERIC_FEATURES, 1e6), "UsageHoursPerDay": 24.0},
            {**dict.fromkeys(NUMERIC_FEATURES, 0.0), "UsageHoursPerDay": 24.0},
            {**rows[5], "EnergyConsumption": 1e6, "DeviceAgeMonths": 0.0},
        ):
            edges.append({**values, "DeviceType": device})
    return edges


def _assembled_columns(stages: list[dict[str, Any]]) -> dict[int, str]:
    """Feature index in the assembled vector -> the raw numeric column it comes from."""
    assembler = next(s for s in stages if s["type"] == "VectorAssembler")
    widths = {}
    for s in stages:
        if s["type"] == "OneHotEncoder":
            for col, size in zip(s["outputCols"], s["categorySizes"], strict=True):
                keep, drop = s["handleInvalid"] == "keep", s["dropLast"]
                widths[col] = (
                    size + 1 if keep and not drop else size - 1 if drop and not keep else size
                )
    out, at = {}, 0
    for col in assembler["inputCols"]:
        if col in NUMERIC_FEATURES:
            out[at] = col
        at += widths.get(col, 1)
    return out


def _scaling(stages: list[dict[str, Any]], index: int) -> tuple[float, float]:
    """(shift, scale) the pipeline applies to assembled feature ``index``."""
    scaler = next((s for s in stages if s["type"] == "StandardScaler"), None)
    if scaler is None:
        return 0.0, 1.0
    shift = scaler["mean"][index] if scaler["withMean"] else 0.0
    std = scaler["std"][index]
    scale = (0.0 if std == 0 else 1.0 / std) if scaler["withStd"] else 1.0
    return shift, scale


def _raw_values_on(target: float, shift: float, scale: float) -> list[float]:
    """A raw value whose scaled value is exactly ``target`` (when one exists) and its two
    neighbouring floats; otherwise the closest guess and its neighbours."""
    if scale == 0:
        return []
    guess = target / scale + shift
    candidates = [guess]
    for direction in (math.inf, -math.inf):
        x = guess
        for _ in range(4):
            x = math.nextafter(x, direction)
            candidates.append(x)
    exact = [x for x in candidates if (x - shift) * scale == target]
    centre = exact[0] if exact else guess
    return [math.nextafter(centre, -math.inf), centre, math.nextafter(centre, math.inf)]


def _threshold_edges(
    stages: list[dict[str, Any]], rows: list[dict[str, Any]], limit: int = 300
) -> list[dict]:
    """Rows whose scaled feature equals a tree threshold (and one ulp either side), for up to
    ``limit`` distinct (feature, threshold) pairs spread over all trees."""
    columns = _assembled_columns(stages)
    splits = sorted(
        {
            (feature, threshold)
            for tree in stages[-1].get("trees", [])
            for feature, threshold in zip(tree["feature"], tree["threshold"], strict=True)
            if feature in columns
        }
    )
    if len(splits) > limit:
        splits = [splits[i * len(splits) // limit] for i in range(limit)]
    edges = []
    for feature, threshold in splits:
        shift, scale = _scaling(stages, feature)
        for value in _raw_values_on(threshold, shift, scale):
            for base in _base_rows(rows)[:2]:
                edges.append({**base, columns[feature]: value})
    return edges


def _on_threshold(stages: list[dict[str, Any]], edges: list[dict]) -> int:
    """How many edge rows scale to exactly one of the trees' thresholds."""
    columns = _assembled_columns(stages)
    splits = {
        (f, t)
        for tree in stages[-1].get("trees", [])
        for f, t in zip(tree["feature"], tree["threshold"], strict=True)
        if f in columns
    }
    hits = 0
    for feature, threshold in splits:
        shift, scale = _scaling(stages, feature)
        col = columns[feature]
        hits += sum(1 for e in edges if (e[col] - shift) * scale == threshold)
    return hits


def _cluster_edges(scorer: PipelineScorer, stages: list[dict[str, Any]]) -> list[dict]:
    """Rows on the raw line between two centers: the midpoint, and a hair either side of the
    point where the assigned cluster switches (found by bisection)."""
    model = stages[-1]
    if model["type"] != "KMeans":
        return []
    columns = _assembled_columns(stages)
    centers = []
    for center in model["centers"]:
        raw = {}
        for index, col in columns.items():
            shift, scale = _scaling(stages, index)
            raw[col] = center[index] / scale + shift if scale else shift
        centers.append(raw)
    edges = []
    for i in range(len(centers)):
        for j in range(i + 1, len(centers)):
            for device in DEVICE_TYPES[:2]:

                def at(t: float, i: int = i, j: int = j, device: str = device) -> dict:
                    row = {c: (1 - t) * centers[i][c] + t * centers[j][c] for c in centers[i]}
                    return {**row, "DeviceType": device}

                edges.append(at(0.5))
                lo, hi = 0.0, 1.0
                first = scorer.predict([at(lo)]).prediction[0]
                if scorer.predict([at(hi)]).prediction[0] == first:
                    continue
                for _ in range(60):
                    mid = (lo + hi) / 2
                    if scorer.predict([at(mid)]).prediction[0] == first:
                        lo = mid
                    else:
                        hi = mid
                edges += [at(lo - 1e-7), at(lo), at(hi), at(hi + 1e-7)]
    return edges


# ---------------------------------------------------------------- comparison


def _spark_result(model: Any, frame: Any, prediction: str, probability: str) -> tuple:
    cols = [prediction] + ([probability] if probability else [])
    out = model.transform(frame).orderBy("_row").select(*cols).collect()
    pred = np.array([r[0] for r in out], dtype=np.float64)
    prob = np.array([r[1].toArray() for r in out]) if probability else None
    return pred, prob


def assert_parity(
    spark: Any, model: Any, scorer: PipelineScorer, data: tuple, edges: list[dict]
) -> None:
    """Score the dataset plus ``edges`` both ways and compare row by row; then every 7th
    dataset row and every edge row scored alone (the API's one-row request)."""
    frame, dataset_rows = data
    rows = dataset_rows + edges
    estimator = model.stages[-1]
    last = type(estimator).__name__
    probability = "probability" if "Classification" in last else ""
    both = frame.unionByName(_frame(spark, edges, first=len(dataset_rows)))
    theirs = _spark_result(model, both, estimator.getPredictionCol(), probability)
    assert_same(scorer.predict(rows), theirs, last, rows)
    alone = list(range(0, len(dataset_rows), 7)) + list(range(len(dataset_rows), len(rows)))
    one_by_one = [scorer.predict([rows[i]]) for i in alone]
    ours = ScoreResult(
        np.concatenate([r.prediction for r in one_by_one]),
        None if theirs[1] is None else np.concatenate([r.probability for r in one_by_one]),
    )
    subset = theirs[0][alone], None if theirs[1] is None else theirs[1][alone]
    assert_same(ours, subset, last, [rows[i] for i in alone])


def assert_same(ours: ScoreResult, theirs: tuple, kind: str, rows: list[dict]) -> None:
    """Classes and clusters equal; probabilities and regression values within TOL."""
    prediction, probability = theirs
    if "Regression" in kind:
        np.testing.assert_allclose(ours.prediction, prediction, rtol=1e-12, atol=TOL)
    else:
        mismatch = np.nonzero(ours.prediction != prediction)[0]
        assert mismatch.size == 0, f"{mismatch.size} class mismatches, e.g. {rows[mismatch[0]]}"
    if probability is not None:
        assert ours.probability is not None
        np.testing.assert_allclose(ours.probability, probability, rtol=0, atol=TOL)
    else:
        assert ours.probability is None


@pytest.mark.parametrize("case", list(_estimators()))
def test_parity_with_spark_transform(spark: Any, data: tuple, case: str) -> None:
    frame, rows = data
    make, features, variant = _estimators()[case]
    model = _pipeline(make(), features, variant).fit(frame)
    # exactly what scoring.json holds, read back through its contract
    exported = json.loads(json.dumps(export_pipeline(model).model_dump(mode="json")))
    scorer = PipelineScorer(spec.Pipeline.model_validate(exported))
    stages = exported["stages"]
    edges = _generic_edges(rows) + _threshold_edges(stages, rows) + _cluster_edges(scorer, stages)
    if "trees" in stages[-1]:
        assert _on_threshold(stages, edges) > 10, "expected rows exactly on tree thresholds"
    assert_parity(spark, model, scorer, data, edges)


def test_saved_model_set_matches_spark(spark: Any, data: tuple, trained_model_dir: Path) -> None:
    """The real trained set: its scoring.json versus its three saved PipelineModels."""
    from pyspark.ml import PipelineModel

    from smarthome.contracts import model_sets as registry

    _, rows = data
    set_dir = registry.newest_set(trained_model_dir)
    assert set_dir is not None
    model_set = ModelSet.load(set_dir)
    for name in registry.MODEL_NAMES:
        model = PipelineModel.load(str(set_dir / name))
        scorer = getattr(model_set, name)
        stages = json.loads((set_dir / registry.SCORING).read_text())[name]["stages"]
        edges = _generic_edges(rows) + _threshold_edges(stages, rows)
        edges += _cluster_edges(scorer, stages)
        if "trees" in stages[-1]:
            assert _on_threshold(stages, edges) > 10, "expected rows exactly on tree thresholds"
        assert_parity(spark, model, scorer, data, edges)
    efficiency = model_set.predict_efficiency(rows[:3])
    assert all(c in (0, 1) and 0.5 <= p <= 1 for c, p in efficiency)


def test_unsupported_stage_is_refused(spark: Any, data: tuple) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Bucketizer

    frame, _ = data
    bucketizer = Bucketizer(
        splits=[0, 12, 24.01], inputCol="UsageHoursPerDay", outputCol="usage_bucket"
    )
    model = Pipeline(stages=[bucketizer]).fit(frame)
    with pytest.raises(UnsupportedStageError, match="Bucketizer"):
        export_pipeline(model)


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("LogisticRegression", "LogisticRegressionModel"),
        ("GBTClassifier", "GBTClassificationModel"),
    ],
)
def test_an_estimator_training_does_not_fit_is_refused(
    spark: Any, data: tuple, kind: str, model: str
) -> None:
    from pyspark.ml import classification

    frame, _ = data
    estimator = getattr(classification, kind)(labelCol=EFF, maxIter=2)
    fitted = _pipeline(estimator, DEVICE_FEATURES, "default").fit(frame)
    with pytest.raises(UnsupportedStageError, match=f"cannot export pipeline stage {model} "):
        export_pipeline(fitted)


def test_a_categorical_split_is_refused(spark: Any, data: tuple) -> None:
    """A forest on the raw category index splits on categories; the scorer has no such split."""
    from pyspark.ml.classification import RandomForestClassifier

    frame, _ = data
    forest = RandomForestClassifier(labelCol="Nominal", numTrees=5, maxDepth=4, seed=3)
    model = _pipeline(forest, NOMINAL_FEATURES, "nominal").fit(frame)
    with pytest.raises(
        UnsupportedStageError,
        match=r"stages\[2\]\.RandomForestClassifier\.trees"
        r"\[\d+\]\.leftCategories: categorical splits are not supported",
    ):
        export_pipeline(model)
