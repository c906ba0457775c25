"""The numpy scorer on hand-made exports: Spark's semantics stage by stage, ModelSet loading
errors, and that it never imports pyspark. No JVM here (parity with Spark is in
test_scoring_parity.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smarthome.scoring.model_set import ModelSet, ModelSetError, PipelineScorer

ROOT = Path(__file__).resolve().parents[2]


def indexer(labels: list[str], invalid: str = "keep") -> dict[str, Any]:
    return {
        "type": "StringIndexer",
        "inputCols": ["DeviceType"],
        "outputCols": ["idx"],
        "labels": [labels],
        "handleInvalid": invalid,
    }


def encoder(size: int, drop_last: bool, invalid: str) -> dict[str, Any]:
    return {
        "type": "OneHotEncoder",
        "inputCols": ["idx"],
        "outputCols": ["vec"],
        "categorySizes": [size],
        "dropLast": drop_last,
        "handleInvalid": invalid,
    }


def assembler(cols: list[str], invalid: str = "error") -> dict[str, Any]:
    return {"type": "VectorAssembler", "inputCols": cols, "outputCol": "features",
            "handleInvalid": invalid}  # fmt: skip


def predictor(kind: str, **fitted: Any) -> dict[str, Any]:
    return {"type": kind, "featuresCol": "features", "predictionCol": "prediction",
            "probabilityCol": "probability" if "Classifier" in kind or kind == "LogisticRegression"
            else "", "numFeatures": None, **fitted}  # fmt: skip


def linear(coefficients: list[float], intercept: float = 0.0) -> dict[str, Any]:
    return predictor("LinearRegression", coefficients=coefficients, intercept=intercept)


def scorer(*stages: dict[str, Any]) -> PipelineScorer:
    return PipelineScorer.from_dict({"format": 1, "stages": list(stages)})


def tree(feature, threshold, left, right, value, categories=None) -> dict[str, Any]:
    return {"feature": feature, "threshold": threshold, "left": left, "right": right,
            "value": value, "leftCategories": categories or {}}  # fmt: skip


def stump(feature: int, threshold: float, low: Any, high: Any) -> dict[str, Any]:
    """One split: ``x[feature] <= threshold`` -> leaf 1 (``low``), else leaf 2 (``high``)."""
    inner = [] if isinstance(low, list) else 0.0
    return tree([feature, -1, -1], [threshold, 0.0, 0.0], [1, -1, -1], [2, -1, -1],
                [inner, low, high])  # fmt: skip


def rows_x(*values: float) -> list[dict[str, Any]]:
    return [{"x": v, "y": 0.0, "DeviceType": "A"} for v in values]


# ---------------------------------------------------------------- feature stages


def test_string_indexer_uses_spark_order_and_keep_index_for_unseen_and_null() -> None:
    s = scorer(indexer(["B", "A"]), assembler(["idx"]), linear([1.0]))
    rows = [{"DeviceType": d} for d in ("B", "A", "Toaster", None)]
    assert s.predict(rows).prediction.tolist() == [0.0, 1.0, 2.0, 2.0]


def test_string_indexer_error_mode_rejects_unseen() -> None:
    s = scorer(indexer(["B", "A"], invalid="error"), assembler(["idx"]), linear([1.0]))
    with pytest.raises(ValueError, match="unseen label 'Toaster'"):
        s.predict([{"DeviceType": "Toaster"}])


@pytest.mark.parametrize(
    ("drop_last", "invalid", "expected"),
    [
        # categorySize 3 = labels B, A + StringIndexer's 'keep' slot (index 2 = unseen)
        (True, "error", [[1, 0], [0, 1], [0, 0]]),
        (False, "error", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        (True, "keep", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        (False, "keep", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]),
    ],
)
def test_one_hot_sizes_follow_drop_last_and_keep(
    drop_last: bool, invalid: str, expected: list[list[int]]
) -> None:
    width = len(expected[0])
    digits = [10.0**i for i in range(width)]  # prediction spells out the encoded vector
    s = scorer(indexer(["B", "A"]), encoder(3, drop_last, invalid), assembler(["vec"]),
               linear(digits))  # fmt: skip
    got = s.predict([{"DeviceType": d} for d in ("B", "A", "Toaster")]).prediction
    assert got.tolist() == [float(np.dot(e, digits)) for e in expected]


def test_one_hot_keep_puts_out_of_range_index_in_the_extra_slot() -> None:
    # a numeric column fed straight to the encoder: index 5 is beyond categorySize 2
    s = scorer(
        {**encoder(2, False, "keep"), "inputCols": ["x"]},
        assembler(["vec"]),
        linear([1.0, 10.0, 100.0]),
    )
    assert s.predict(rows_x(0, 1, 5)).prediction.tolist() == [1.0, 10.0, 100.0]
    strict = scorer({**encoder(2, False, "error"), "inputCols": ["x"]}, assembler(["vec"]),
                    linear([1.0, 10.0]))  # fmt: skip
    with pytest.raises(ValueError, match="out of range"):
        strict.predict(rows_x(5))


@pytest.mark.parametrize(("with_mean", "with_std"), [(False, True), (True, True), (True, False),
                                                     (False, False)])  # fmt: skip
def test_scaler_formula_and_zero_std(with_mean: bool, with_std: bool) -> None:
    scaler = {
        "type": "StandardScaler",
        "inputCol": "features",
        "outputCol": "scaled",
        "withMean": with_mean,
        "withStd": with_std,
        "mean": [1.5, 2.0],
        "std": [0.3, 0.0],
    }
    model = {**linear([1.0, 1000.0]), "featuresCol": "scaled"}
    s = scorer(assembler(["x", "y"]), scaler, model)
    got = s.predict([{"x": 7.25, "y": 9.0}]).prediction[0]
    x, y = (7.25 - 1.5 if with_mean else 7.25), (9.0 - 2.0 if with_mean else 9.0)
    if with_std:
        x, y = x * (1.0 / 0.3), y * 0.0  # Spark multiplies by 1/std, and by 0 where std == 0
    assert got == x + 1000.0 * y


def test_missing_or_non_numeric_input_names_the_column() -> None:
    s = scorer(assembler(["x", "y"]), linear([1.0, 1.0]))
    with pytest.raises(ValueError, match="^y: missing"):
        s.predict([{"x": 1.0}])
    with pytest.raises(ValueError, match="must be a number"):
        s.predict([{"x": "one", "y": 1.0}])
    with pytest.raises(ValueError, match="NaN"):
        s.predict([{"x": math.nan, "y": 1.0}])


# ---------------------------------------------------------------- estimators


def test_tree_value_on_the_threshold_goes_left_and_nan_goes_right() -> None:
    model = predictor("DecisionTreeRegressor", trees=[stump(0, 0.5, 10.0, 20.0)],
                      treeWeights=[1.0])  # fmt: skip
    s = scorer(assembler(["x", "y"], invalid="keep"), model)
    below, above = math.nextafter(0.5, 0), math.nextafter(0.5, 1)
    got = s.predict(rows_x(below, 0.5, above, math.nan)).prediction
    assert got.tolist() == [10.0, 10.0, 20.0, 20.0]


def test_categorical_split_goes_left_for_listed_categories() -> None:
    t = tree([0, -1, -1], [0.0, 0.0, 0.0], [1, -1, -1], [2, -1, -1], [0.0, 1.0, 2.0],
             categories={"0": [0.0, 2.0]})  # fmt: skip
    s = scorer(assembler(["x"]), predictor("DecisionTreeRegressor", trees=[t], treeWeights=[1.0]))
    assert s.predict(rows_x(0, 1, 2, 3)).prediction.tolist() == [1.0, 2.0, 1.0, 2.0]


def test_random_forest_classifier_sums_normalised_leaf_counts() -> None:
    trees = [stump(0, 0.5, [3.0, 1.0], [1.0, 1.0]), stump(0, 0.5, [0.0, 4.0], [2.0, 0.0])]
    model = predictor("RandomForestClassifier", trees=trees, treeWeights=[1.0, 1.0], numClasses=2)
    result = scorer(assembler(["x"]), model).predict(rows_x(0.0, 1.0))
    # row 0: votes 0.75+0 | 0.25+1 -> [0.375, 0.625]; row 1: 0.5+1 | 0.5+0 -> [0.75, 0.25]
    assert result.prediction.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(result.probability, [[0.375, 0.625], [0.75, 0.25]])


def test_decision_tree_classifier_normalises_leaf_counts() -> None:
    model = predictor("DecisionTreeClassifier", trees=[stump(0, 0.5, [1.0, 3.0], [5.0, 5.0])],
                      treeWeights=[1.0], numClasses=2)  # fmt: skip
    result = scorer(assembler(["x"]), model).predict(rows_x(0.0, 1.0))
    assert result.prediction.tolist() == [1.0, 0.0]  # a tie goes to the first class
    np.testing.assert_array_equal(result.probability, [[0.25, 0.75], [0.5, 0.5]])


def test_gbt_weighted_margin_and_spark_probability() -> None:
    trees = [stump(0, 0.5, -1.0, 1.0), stump(0, 0.5, 0.5, -0.5)]
    classifier = predictor("GBTClassifier", trees=trees, treeWeights=[1.0, 0.1], numClasses=2)
    result = scorer(assembler(["x"]), classifier).predict(rows_x(0.0, 1.0))
    margin = np.array([-1.0 + 0.1 * 0.5, 1.0 - 0.1 * 0.5])
    assert result.prediction.tolist() == [0.0, 1.0]
    p0 = 1.0 / (1.0 + np.exp(2.0 * margin))
    np.testing.assert_allclose(result.probability, np.column_stack([p0, 1 - p0]), rtol=1e-15)
    regressor = {**classifier, "type": "GBTRegressor"}
    got = scorer(assembler(["x"]), regressor).predict(rows_x(0.0, 1.0)).prediction
    np.testing.assert_allclose(got, margin, rtol=1e-15)


def test_random_forest_regressor_is_the_mean() -> None:
    trees = [stump(0, 0.5, 1.0, 2.0), stump(0, 0.5, 4.0, 8.0)]
    model = predictor("RandomForestRegressor", trees=trees, treeWeights=[1.0, 1.0])
    assert scorer(assembler(["x"]), model).predict(rows_x(0, 1)).prediction.tolist() == [2.5, 5.0]


def test_logistic_binary_threshold_and_probabilities() -> None:
    model = predictor("LogisticRegression", coefficients=[2.0], intercept=-1.0, threshold=0.5,
                      multinomial=False, numClasses=2)  # fmt: skip
    result = scorer(assembler(["x"]), model).predict(rows_x(0.0, 0.5, 1.0, 1e6))
    assert result.prediction.tolist() == [0.0, 0.0, 1.0, 1.0]  # margin 0 is not > 0
    m = np.array([-1.0, 0.0, 1.0, 2e6 - 1])
    with np.errstate(over="ignore"):
        expected = np.column_stack([1 / (1 + np.exp(m)), 1 / (1 + np.exp(-m))])
    np.testing.assert_array_equal(result.probability, expected)
    high = {**model, "threshold": 0.9}  # class 1 only when p1 > 0.9
    assert scorer(assembler(["x"]), high).predict(rows_x(1.0, 2.0)).prediction.tolist() == [0, 1]


def test_logistic_multinomial_softmax() -> None:
    model = predictor("LogisticRegression", coefficients=[[1.0], [0.0], [-1.0]],
                      intercepts=[0.0, 0.5, 0.0], multinomial=True, numClasses=3)  # fmt: skip
    result = scorer(assembler(["x"]), model).predict(rows_x(3.0, 0.0, -3.0))
    assert result.prediction.tolist() == [0.0, 1.0, 2.0]
    raw = np.array([[3.0, 0.5, -3.0], [0.0, 0.5, 0.0], [-3.0, 0.5, 3.0]])
    expected = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.probability, expected, rtol=1e-14)


def test_kmeans_nearest_center_ties_go_to_the_lowest_index() -> None:
    model = predictor("KMeans", centers=[[2.0, 0.0], [0.0, 0.0], [1.0, 5.0]],
                      distanceMeasure="euclidean")  # fmt: skip
    s = scorer(assembler(["x", "y"]), model)
    got = s.predict([{"x": 1.0, "y": 0.0}, {"x": 0.1, "y": 0.0}, {"x": 1.0, "y": 4.0}])
    assert got.prediction.tolist() == [0.0, 1.0, 2.0]
    assert got.probability is None


# ---------------------------------------------------------------- model sets


def write_set(folder: Path, **override: Any) -> Path:
    """A minimal valid set folder (hand-made pipelines) with optional file overrides."""
    folder.mkdir(parents=True, exist_ok=True)
    features = ["UsageHoursPerDay", "EnergyConsumption"]
    eff = [indexer(["Camera", "Lights"]), encoder(3, True, "error"),
           assembler(["vec", *features]),
           predictor("LogisticRegression", coefficients=[0.0, 0.0, 1.0, -0.1], intercept=-5.0,
                     threshold=0.5, multinomial=False, numClasses=2)]  # fmt: skip
    mal = [assembler(features), linear([0.1, 0.01], 0.5)]
    seg = [assembler(features), predictor("KMeans", centers=[[0.0, 0.0], [20.0, 20.0]],
                                          distanceMeasure="euclidean")]  # fmt: skip
    files = {
        "manifest.json": json.dumps({"set_number": 1}),
        "clusters.json": json.dumps({"clusters": [{"cluster": 0}, {"cluster": 1}]}),
        "scoring.json": json.dumps({"format": 1, **{
            name: {"format": 1, "stages": stages}
            for name, stages in (("efficiency", eff), ("malfunction", mal), ("clustering", seg))
        }}),
    }  # fmt: skip
    files.update(override)
    for name, text in files.items():
        if text is not None:
            (folder / name).write_text(text)
    return folder


ROW = {
    **{"DeviceType": "Lights", "UsageHoursPerDay": 10.0, "EnergyConsumption": 2.0},
    **{"UserPreferences": 1, "MalfunctionIncidents": 0, "DeviceAgeMonths": 3, "UserID": 7},
}


def test_model_set_predictions(tmp_path: Path) -> None:
    model_set = ModelSet.load(write_set(tmp_path / "20260101T000000Z_set0001"))
    assert model_set.name == "20260101T000000Z_set0001"
    assert model_set.manifest == {"set_number": 1}
    rows = [ROW, {**ROW, "UsageHoursPerDay": 1.0, "DeviceType": "Toaster"}]
    (c1, p1), (c2, p2) = model_set.predict_efficiency(rows)
    m1 = 10.0 - 0.2 - 5.0
    assert (c1, c2) == (1, 0)
    assert p1 == pytest.approx(1 / (1 + math.exp(-m1)), abs=1e-15) and 0.5 < p2 <= 1
    assert model_set.predict_malfunction(rows) == pytest.approx([1.52, 0.62], abs=1e-12)
    assert model_set.segment(rows) == [0, 0]
    assert isinstance(model_set.segment([{**ROW, "UsageHoursPerDay": 24.0}])[0], int)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"scoring.json": None}, "scoring.json: missing"),
        ({"manifest.json": None}, "manifest.json: missing"),
        ({"clusters.json": None}, "clusters.json: missing"),
        ({"scoring.json": '{"format": 1, '}, "scoring.json: not valid JSON"),
        ({"manifest.json": "[1, 2]"}, "manifest.json: must be a JSON object"),
        ({"scoring.json": '{"format": 2}'}, "scoring.json: format must be 1"),
        ({"scoring.json": '{"format": 1, "efficiency": {"format": 1, "stages": []}}'},
         "scoring.json: efficiency pipeline is corrupt"),
        ({"scoring.json": '{"format": 1, "efficiency": {"format": 1, "stages": [{"type": "X"}]},'
                          '"malfunction": {}, "clustering": {}}'},
         "scoring.json: efficiency pipeline is corrupt"),
        ({"scoring.json": json.dumps({"format": 1, "efficiency": {"format": 1, "stages": [
            {"type": "LinearRegression", "featuresCol": "f"}]}})},
         "scoring.json: efficiency pipeline is corrupt (missing key 'coefficients')"),
    ],
)  # fmt: skip
def test_model_set_load_errors_name_the_file(tmp_path: Path, override: dict, reason: str) -> None:
    folder = write_set(tmp_path / "20260101T000000Z_set0001", **override)
    with pytest.raises(ModelSetError) as caught:
        ModelSet.load(folder)
    assert str(caught.value).startswith(reason)
    assert caught.value.reason == str(caught.value)


def test_model_set_load_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelSetError, match="not a model set folder"):
        ModelSet.load(tmp_path / "nope")


def test_scoring_never_imports_pyspark(tmp_path: Path) -> None:
    """Load and score a set in a fresh interpreter; neither pyspark nor py4j gets imported."""
    folder = write_set(tmp_path / "20260101T000000Z_set0001")
    code = (
        "import sys, json\n"
        "from smarthome.scoring.model_set import ModelSet\n"
        f"s = ModelSet.load({str(folder)!r})\n"
        f"print(s.predict_efficiency([{ROW!r}]), s.segment([{ROW!r}]))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j'))\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert "IMPORTED []" in out.stdout, out.stdout + out.stderr
