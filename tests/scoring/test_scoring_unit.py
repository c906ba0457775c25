"""The numpy scorer on hand-made exports: Spark's semantics stage by stage, one row scored as
the batch scores it, the scoring.json contract's errors, and that it never imports pyspark.
No JVM here (parity with Spark is in test_scoring_parity.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smarthome.contracts import scoring_file as spec
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


def estimator(kind: str, width: int, **fitted: Any) -> dict[str, Any]:
    probability = "probability" if kind == "RandomForestClassifier" else ""
    return {"type": kind, "featuresCol": "features", "predictionCol": "prediction",
            "probabilityCol": probability, "numFeatures": width, **fitted}  # fmt: skip


def linear(coefficients: list[float], intercept: float = 0.0) -> dict[str, Any]:
    return estimator("LinearRegression", len(coefficients), coefficients=coefficients,
                     intercept=intercept)  # fmt: skip


def forest(trees: list[dict[str, Any]], width: int = 1) -> dict[str, Any]:
    return estimator("RandomForestClassifier", width, trees=trees,
                     treeWeights=[1.0] * len(trees), numClasses=2)  # fmt: skip


def scorer(*stages: dict[str, Any]) -> PipelineScorer:
    return PipelineScorer(spec.Pipeline(stages=list(stages)))


def stump(feature: int, threshold: float, low: list[float], high: list[float]) -> dict:
    """One split: ``x[feature] <= threshold`` -> leaf 1 (class counts ``low``), else leaf 2."""
    return {"feature": [feature, -1, -1], "threshold": [threshold, 0.0, 0.0],
            "left": [1, -1, -1], "right": [2, -1, -1], "value": [[], low, high],
            "leftCategories": {}}  # fmt: skip


def rows_x(*values: float) -> list[dict[str, Any]]:
    return [{"x": v, "y": 0.0, "DeviceType": "A"} for v in values]


def assert_one_row_scores_as_the_batch(s: PipelineScorer, rows: list[dict[str, Any]]) -> None:
    """The API's one-row request runs the batch code on n = 1: the very same bits."""
    batch = s.predict(rows)
    for i, row in enumerate(rows):
        one = s.predict([row])  # exact equality (NaN where the batch has NaN)
        np.testing.assert_array_equal(one.prediction, batch.prediction[i : i + 1], str(row))
        if batch.probability is not None:
            np.testing.assert_array_equal(one.probability, batch.probability[i : i + 1])
        else:
            assert one.probability is None


# ---------------------------------------------------------------- feature stages


def test_string_indexer_uses_spark_order_and_keep_index_for_unseen_and_null() -> None:
    s = scorer(indexer(["B", "A"]), assembler(["idx"]), linear([1.0]))
    rows = [{"DeviceType": d} for d in ("B", "A", "Toaster", None)]
    assert s.predict(rows).prediction.tolist() == [0.0, 1.0, 2.0, 2.0]
    assert_one_row_scores_as_the_batch(s, rows)


def test_string_indexer_error_mode_rejects_unseen() -> None:
    s = scorer(indexer(["B", "A"], invalid="error"), assembler(["idx"]), linear([1.0]))
    with pytest.raises(ValueError, match="unseen label 'Toaster'"):
        s.predict([{"DeviceType": "A"}, {"DeviceType": "Toaster"}])
    with pytest.raises(ValueError, match="unseen label None"):
        s.predict([{"DeviceType": None}])


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
    rows = [{"DeviceType": d} for d in ("B", "A", "Toaster")]
    assert s.predict(rows).prediction.tolist() == [float(np.dot(e, digits)) for e in expected]
    assert_one_row_scores_as_the_batch(s, rows)


def test_one_hot_keep_puts_an_index_beyond_its_size_in_the_extra_slot() -> None:
    # the indexer's unseen index 2 is beyond categorySize 2: invalid for the encoder
    rows = [{"DeviceType": d} for d in ("B", "A", "Toaster")]
    s = scorer(indexer(["B", "A"]), encoder(2, False, "keep"), assembler(["vec"]),
               linear([1.0, 10.0, 100.0]))  # fmt: skip
    assert s.predict(rows).prediction.tolist() == [1.0, 10.0, 100.0]
    assert_one_row_scores_as_the_batch(s, rows)
    strict = scorer(indexer(["B", "A"]), encoder(2, False, "error"), assembler(["vec"]),
                    linear([1.0, 10.0]))  # fmt: skip
    for bad in (rows, rows[2:]):
        with pytest.raises(ValueError, match=r"^idx: category index out of range 0\.\.1"):
            strict.predict(bad)


def test_the_encoder_reads_a_string_indexer_output() -> None:
    with pytest.raises(ValueError, match=r"stages\[0\] \(OneHotEncoder\): x: not a StringIndexer"):
        scorer({**encoder(2, False, "keep"), "inputCols": ["x"]}, assembler(["vec"]),
               linear([1.0, 1.0, 1.0]))  # fmt: skip


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
    for missing in (math.nan, None):
        with pytest.raises(ValueError, match="^features: a NaN or missing value among x, y"):
            s.predict([{"x": 1.0, "y": 1.0}, {"x": missing, "y": 1.0}])


def test_numbers_are_read_alike_for_one_row_and_for_many() -> None:
    s = scorer(assembler(["x", "y"], invalid="keep"), linear([1.0, 1000.0]))
    rows = [{"x": 1, "y": True}, {"x": "2.5", "y": 2**60 + 1}, {"x": None, "y": 0.0},
            {"x": 1e300, "y": -0.0}]  # fmt: skip
    assert_one_row_scores_as_the_batch(s, rows)
    got = s.predict(rows).prediction
    assert got[:2].tolist() == [1001.0, 2.5 + 1000.0 * float(2**60 + 1)] and math.isnan(got[2])


def test_widths_are_checked_when_the_pipeline_is_built() -> None:
    with pytest.raises(ValueError, match=r"stages\[1\] \(LinearRegression\): expects 3"):
        scorer(assembler(["x", "y"]), linear([1.0, 1.0, 1.0]))
    scaler = {"type": "StandardScaler", "inputCol": "features", "outputCol": "s",
              "withMean": True, "withStd": True, "mean": [0.0], "std": [1.0]}  # fmt: skip
    with pytest.raises(ValueError, match=r"stages\[1\] \(StandardScaler\): features: 1 means"):
        scorer(assembler(["x", "y"]), scaler, {**linear([1.0]), "featuresCol": "s"})


# ---------------------------------------------------------------- estimators


def test_forest_value_on_the_threshold_goes_left_and_nan_goes_right() -> None:
    s = scorer(assembler(["x"], invalid="keep"), forest([stump(0, 0.5, [1.0, 0.0], [0.0, 1.0])]))
    below, above = math.nextafter(0.5, 0), math.nextafter(0.5, 1)
    rows = rows_x(below, 0.5, above, math.nan, -math.inf, math.inf)
    assert s.predict(rows).prediction.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert_one_row_scores_as_the_batch(s, rows)


def test_forest_sums_normalised_leaf_counts_in_tree_order() -> None:
    trees = [stump(0, 0.5, [3.0, 1.0], [1.0, 1.0]), stump(0, 0.5, [0.0, 4.0], [2.0, 0.0])]
    result = scorer(assembler(["x"]), forest(trees)).predict(rows_x(0.0, 1.0))
    # row 0: votes 0.75+0 | 0.25+1 -> [0.375, 0.625]; row 1: 0.5+1 | 0.5+0 -> [0.75, 0.25]
    assert result.prediction.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(result.probability, [[0.375, 0.625], [0.75, 0.25]])


def test_forest_tie_goes_to_the_first_class_and_trees_of_different_depths() -> None:
    deep = {"feature": [0, 1, -1, -1, -1], "threshold": [0.5, 0.5, 0.0, 0.0, 0.0],
            "left": [1, 3, -1, -1, -1], "right": [2, 4, -1, -1, -1],
            "value": [[], [], [5.0, 5.0], [0.0, 2.0], [6.0, 0.0]],
            "leftCategories": {}}  # fmt: skip
    s = scorer(assembler(["x", "y"]), forest([deep, stump(1, 0.5, [1.0, 1.0], [1.0, 1.0])], 2))
    rows = [{"x": 0.0, "y": 0.0}, {"x": 0.0, "y": 1.0}, {"x": 1.0, "y": 0.0}]
    result = s.predict(rows)
    assert result.prediction.tolist() == [1.0, 0.0, 0.0]  # row 2: [1, 1] -> a tie -> class 0
    np.testing.assert_array_equal(result.probability, [[0.25, 0.75], [0.75, 0.25], [0.5, 0.5]])
    assert_one_row_scores_as_the_batch(s, rows)


def test_kmeans_nearest_center_ties_go_to_the_lowest_index() -> None:
    model = estimator("KMeans", 2, centers=[[2.0, 0.0], [0.0, 0.0], [1.0, 5.0]],
                      distanceMeasure="euclidean")  # fmt: skip
    s = scorer(assembler(["x", "y"]), model)
    rows = [{"x": 1.0, "y": 0.0}, {"x": 0.1, "y": 0.0}, {"x": 1.0, "y": 4.0}]
    got = s.predict(rows)
    assert got.prediction.tolist() == [0.0, 1.0, 2.0]
    assert got.probability is None
    assert_one_row_scores_as_the_batch(s, rows)


def test_kmeans_cosine_is_the_smallest_angle() -> None:
    model = estimator("KMeans", 2, centers=[[1.0, 0.0], [0.0, 3.0]], distanceMeasure="cosine")
    got = scorer(assembler(["x", "y"]), model).predict([{"x": 5.0, "y": 1.0}, {"x": 1, "y": 2}])
    assert got.prediction.tolist() == [0.0, 1.0]


# ---------------------------------------------------------------- the scoring.json contract


def test_contract_refuses_what_training_cannot_produce() -> None:
    logistic = {**linear([1.0]), "type": "LogisticRegression"}
    with pytest.raises(spec.ValidationError, match="does not match any of the expected tags"):
        spec.Pipeline(stages=[assembler(["x"]), logistic])
    categorical = {**stump(0, 0.0, [1.0, 0.0], [0.0, 1.0]), "leftCategories": {"0": [1.0]}}
    with pytest.raises(spec.ValidationError, match="categorical splits are not supported"):
        spec.Pipeline(stages=[assembler(["x"]), forest([categorical])])
    with pytest.raises(spec.ValidationError, match="only the last, must be an estimator"):
        spec.Pipeline(stages=[linear([1.0]), assembler(["x"])])


def write_set(folder: Path, **override: Any) -> Path:
    """A minimal valid set folder for the scorer (scoring.json of hand-made pipelines)."""
    folder.mkdir(parents=True, exist_ok=True)
    features = ["UsageHoursPerDay", "EnergyConsumption"]
    device = [indexer(["Camera", "Lights"]), encoder(3, True, "error")]
    eff = [*device, assembler(["vec", *features]),
           forest([stump(2, 5.0, [4.0, 0.0], [1.0, 3.0])], width=4)]  # fmt: skip
    mal = [assembler(features), linear([0.1, 0.01], 0.5)]
    seg = [assembler(features), estimator("KMeans", 2, centers=[[0.0, 0.0], [20.0, 20.0]],
                                          distanceMeasure="euclidean")]  # fmt: skip
    files = {
        "scoring.json": json.dumps(scoring(eff, mal, seg)),
    }
    files.update(override)
    for name, text in files.items():
        if text is not None:
            (folder / name).write_text(text)
    return folder


def scoring(eff: list, mal: list, seg: list) -> dict[str, Any]:
    pipelines = {"efficiency": eff, "malfunction": mal, "clustering": seg}
    return {"format": 1, **{n: {"format": 1, "stages": s} for n, s in pipelines.items()}}


ROW = {
    **{"DeviceType": "Lights", "UsageHoursPerDay": 10.0, "EnergyConsumption": 2.0},
    **{"UserPreferences": 1, "MalfunctionIncidents": 0, "DeviceAgeMonths": 3, "UserID": 7},
}


def test_model_set_predictions(tmp_path: Path) -> None:
    model_set = ModelSet.load(write_set(tmp_path / "20260101T000000Z_set0001"))
    assert model_set.name == "20260101T000000Z_set0001"
    rows = [ROW, {**ROW, "UsageHoursPerDay": 1.0, "DeviceType": "Toaster"}]
    assert model_set.predict_efficiency(rows) == [(1, 0.75), (0, 1.0)]
    assert model_set.predict_malfunction(rows) == pytest.approx([1.52, 0.62], abs=1e-12)
    assert model_set.segment(rows) == [0, 0]
    assert model_set.segment([{**ROW, "UsageHoursPerDay": 24.0, "EnergyConsumption": 24}]) == [1]


def _valid_scoring(tmp: Path) -> dict[str, Any]:
    return json.loads((write_set(tmp) / "scoring.json").read_text())


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        # a renamed field: the old name is unknown, the new one missing
        (lambda d: d["malfunction"]["stages"][1].update(coef=d["malfunction"]["stages"][1]
                                                         .pop("coefficients")),
         "scoring.json: malfunction.stages[1].LinearRegression.coefficients: Field required"),
        (lambda d: d["efficiency"]["stages"][3]["trees"][0].pop("threshold"),
         "scoring.json: efficiency.stages[3].RandomForestClassifier.trees[0].threshold: "
         "Field required"),
        (lambda d: d["clustering"]["stages"][1].update(distanceMeasure="manhattan"),
         "scoring.json: clustering.stages[1].KMeans.distanceMeasure: Input should be"),
        (lambda d: d.pop("clustering"), "scoring.json: clustering: Field required"),
        (lambda d: d.update(format=2),
         "scoring.json: format: must be 1 (got 2); retrain to rewrite the set"),
        (lambda d: d["efficiency"]["stages"][0].update(type="Bucketizer"),
         "scoring.json: efficiency.stages[0]: Input tag 'Bucketizer' found using 'type' does not"),
        (lambda d: d.update(efficiency=d["malfunction"]),
         "scoring.json: efficiency: the estimator must be RandomForestClassifier, not "
         "LinearRegression"),
        (lambda d: d["malfunction"]["stages"][1].update(numFeatures=3, coefficients=[1.0] * 3),
         "scoring.json: malfunction.stages[1] (LinearRegression): expects 3 features"),
    ],
)  # fmt: skip
def test_a_wrong_field_is_one_error_naming_the_file_and_the_field(
    tmp_path: Path, edit: Any, reason: str
) -> None:
    folder = tmp_path / "20260101T000000Z_set0001"
    data = _valid_scoring(folder)
    edit(data)
    (folder / "scoring.json").write_text(json.dumps(data))
    with pytest.raises(ModelSetError) as caught:
        ModelSet.load(folder)
    assert str(caught.value).startswith(reason), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"scoring.json": None}, "scoring.json: missing"),
        ({"scoring.json": '{"format": 1, '}, "scoring.json: not valid JSON"),
        ({"scoring.json": "[1, 2]"}, "scoring.json: Input should be a valid dictionary"),
    ],
)
def test_model_set_load_errors_name_the_file(tmp_path: Path, override: dict, reason: str) -> None:
    folder = write_set(tmp_path / "20260101T000000Z_set0001", **override)
    with pytest.raises(ModelSetError) as caught:
        ModelSet.load(folder)
    assert str(caught.value).startswith(reason)
    assert caught.value.reason == str(caught.value)


def test_model_set_load_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelSetError, match="not a model set folder"):
        ModelSet.load(tmp_path / "nope")


def test_scoring_and_the_api_never_import_pyspark(tmp_path: Path) -> None:
    """Import the scorer and the API, load and score a set in a fresh interpreter: neither
    pyspark nor py4j gets imported."""
    folder = write_set(tmp_path / "20260101T000000Z_set0001")
    code = (
        "import sys\n"
        "import smarthome.scoring, smarthome.api\n"
        "from smarthome.api import create_app\n"
        "from smarthome.scoring.model_set import ModelSet\n"
        f"s = ModelSet.load({str(folder)!r})\n"
        f"print(s.predict_efficiency([{ROW!r}]), s.segment([{ROW!r}]))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j'))\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert "IMPORTED []" in out.stdout, out.stdout + out.stderr
