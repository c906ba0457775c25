"""Export a fitted Spark ``PipelineModel`` as the typed pipeline ``smarthome.scoring`` evaluates.

Runs in the training process (it needs pyspark and, for the forest, the active SparkSession).
Every fitted parameter goes into a ``contracts.scoring_file`` model in full float64 precision
(JSON floats round-trip exactly), so the API can score with numpy exactly as
``PipelineModel.transform`` would (DESIGN §7). Only the stages training fits are exported
(``training.pipelines``); any other stage, or a setting the scorer cannot reproduce, raises
``UnsupportedStageError`` at training time rather than a wrong answer at scoring time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smarthome.contracts import scoring_file as spec


class UnsupportedStageError(ValueError):
    """The pipeline holds a stage (or a stage setting) the numpy scorer cannot reproduce."""


def _param(stage: Any, name: str, default: Any = None) -> Any:
    """A param's value (set or default), or ``default`` when the stage has no such param."""
    if not stage.hasParam(name):
        return default
    param = stage.getParam(name)
    return stage.getOrDefault(param) if stage.isDefined(param) else default


def _columns(stage: Any, single: str, multi: str) -> list[str]:
    """Column names from ``inputCol``/``inputCols`` (or the output equivalents)."""
    many = _param(stage, multi)
    if many:
        return list(many)
    one = _param(stage, single)
    if not one:
        raise UnsupportedStageError(f"{type(stage).__name__}: neither {single} nor {multi} is set")
    return [one]


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _string_indexer(stage: Any) -> dict[str, Any]:
    return {
        "inputCols": _columns(stage, "inputCol", "inputCols"),
        "outputCols": _columns(stage, "outputCol", "outputCols"),
        "labels": [list(labels) for labels in stage.labelsArray],
        "handleInvalid": _param(stage, "handleInvalid", "error"),
    }


def _one_hot(stage: Any) -> dict[str, Any]:
    return {
        "inputCols": _columns(stage, "inputCol", "inputCols"),
        "outputCols": _columns(stage, "outputCol", "outputCols"),
        "categorySizes": [int(s) for s in stage.categorySizes],
        "dropLast": bool(_param(stage, "dropLast", True)),
        "handleInvalid": _param(stage, "handleInvalid", "error"),
    }


def _assembler(stage: Any) -> dict[str, Any]:
    return {
        "inputCols": list(_param(stage, "inputCols")),
        "outputCol": _param(stage, "outputCol"),
        "handleInvalid": _param(stage, "handleInvalid", "error"),
    }


def _scaler(stage: Any) -> dict[str, Any]:
    return {
        "inputCol": _param(stage, "inputCol"),
        "outputCol": _param(stage, "outputCol"),
        "withMean": bool(_param(stage, "withMean", False)),
        "withStd": bool(_param(stage, "withStd", True)),
        "mean": _floats(stage.mean.toArray()),
        "std": _floats(stage.std.toArray()),
    }


def _estimator_cols(stage: Any) -> dict[str, Any]:
    return {
        "featuresCol": _param(stage, "featuresCol", "features"),
        "predictionCol": _param(stage, "predictionCol", "prediction"),
        "probabilityCol": _param(stage, "probabilityCol", ""),
        "numFeatures": int(stage.numFeatures),
    }


def _linear(stage: Any) -> dict[str, Any]:
    return {
        **_estimator_cols(stage),
        "coefficients": _floats(stage.coefficients.toArray()),
        "intercept": float(stage.intercept),
    }


def _kmeans(stage: Any) -> dict[str, Any]:
    return {
        **_estimator_cols(stage),
        "distanceMeasure": _param(stage, "distanceMeasure", "euclidean"),
        "centers": [_floats(c) for c in stage.clusterCenters()],
    }


def _read_tree_nodes(stage: Any, saved: Path | None = None) -> dict[int, list[Any]]:
    """Node rows per tree id, read back from the model's own saved Parquet data.

    pyspark has no public access to a tree's nodes (only ``toDebugString``, without the leaf
    statistics the probabilities need), so the nodes are read from the files the public
    ``MLWriter`` wrote: the same doubles (threshold, leaf stats), in one read by pyarrow on the
    driver (a Spark read would be a job). This is the one place the project reads a layout of
    Spark's; docs/DESIGN.md lists it, and the parity test (``tests/scoring/
    test_scoring_parity.py``) pins it against ``PipelineModel.transform``. ``saved``: the
    stage's folder in a pipeline just saved (on storage the executors share), else it is saved
    to a temporary folder first.
    """
    import pyarrow.parquet as pq

    tmp = None
    if saved is None:
        tmp = Path(tempfile.mkdtemp(prefix="smarthome-export-"))
        saved = tmp / "model"
        stage.write().save(saved.as_uri())
    try:
        trees: dict[int, list[Any]] = {}
        for row in pq.read_table(saved / "data").to_pylist():
            trees.setdefault(int(row["treeID"]), []).append(row["nodeData"])
        return trees
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _tree(nodes: list[Any]) -> dict[str, Any]:
    """One tree as parallel per-node arrays by node id (a leaf: feature -1 and its class
    counts). A categorical split is written as such, for the contract to refuse."""
    nodes = sorted(nodes, key=lambda n: n["id"])
    if [n["id"] for n in nodes] != list(range(len(nodes))):
        raise UnsupportedStageError("tree node ids are not 0..n-1; cannot export this tree")
    feature, threshold, left, right, value = [], [], [], [], []
    categories: dict[str, list[float]] = {}
    for n in nodes:
        split = n["split"]
        leaf = n["leftChild"] < 0
        feature.append(-1 if leaf else int(split["featureIndex"]))
        left.append(int(n["leftChild"]))
        right.append(int(n["rightChild"]))
        if not leaf and int(split["numCategories"]) >= 0:
            categories[str(n["id"])] = _floats(split["leftCategoriesOrThreshold"])
            threshold.append(0.0)
        else:
            threshold.append(0.0 if leaf else float(split["leftCategoriesOrThreshold"][0]))
        value.append(_floats(n["impurityStats"]) if leaf else [])
    return {
        "feature": feature,
        "threshold": threshold,
        "left": left,
        "right": right,
        "leftCategories": categories,
        "value": value,
    }


def _forest(stage: Any, saved: Path | None = None) -> dict[str, Any]:
    if stage.isSet(stage.getParam("thresholds")):
        raise UnsupportedStageError(
            "RandomForestClassificationModel: the 'thresholds' param is set; the numpy scorer "
            "does not reproduce class thresholds, leave it unset"
        )
    nodes = _read_tree_nodes(stage, saved)
    return {
        **_estimator_cols(stage),
        "trees": [_tree(nodes[i]) for i in sorted(nodes)],
        "treeWeights": _floats(stage.treeWeights),
        "numClasses": int(stage.numClasses),
    }


#: pyspark model class name -> (exported type, exporter); training fits exactly these
_EXPORTERS: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "StringIndexerModel": ("StringIndexer", _string_indexer),
    "OneHotEncoderModel": ("OneHotEncoder", _one_hot),
    "VectorAssembler": ("VectorAssembler", _assembler),
    "StandardScalerModel": ("StandardScaler", _scaler),
    "RandomForestClassificationModel": ("RandomForestClassifier", _forest),
    "LinearRegressionModel": ("LinearRegression", _linear),
    "KMeansModel": ("KMeans", _kmeans),
}
SUPPORTED_STAGES = sorted([*_EXPORTERS, "PipelineModel"])


def _saved_stage(saved_at: Path, stage: Any) -> Path:
    """A stage's folder in a saved PipelineModel: ``stages/<index>_<uid>``."""
    found = sorted((saved_at / "stages").glob(f"*_{stage.uid}"))
    if len(found) != 1:
        raise FileNotFoundError(f"{saved_at}: no saved stage {stage.uid} (found {found})")
    return found[0]


def _spark_class(stage: Any) -> str:
    """The name of the pyspark class ``stage`` is, or extends (a subclass is exported as the
    Spark model it wraps)."""
    return next(
        (c.__name__ for c in type(stage).__mro__ if c.__module__.startswith("pyspark.")),
        type(stage).__name__,
    )


def _flatten(model: Any) -> list[Any]:
    if _spark_class(model) == "PipelineModel":
        return [s for stage in model.stages for s in _flatten(stage)]
    return [model]


def export_pipeline(model: Any, saved_at: Path | None = None) -> spec.Pipeline:
    """A fitted ``PipelineModel`` as the typed pipeline of ``scoring.json``.

    Its last stage must be the estimator (as every pipeline of ``training.pipelines``).
    ``saved_at``: where ``model`` was just saved; the forest's trees are read from there
    (saving them again costs three Spark jobs).
    """
    stages = []
    for stage in _flatten(model):
        name = _spark_class(stage)
        if name not in _EXPORTERS:
            raise UnsupportedStageError(
                f"cannot export pipeline stage {name} for scoring without Spark; "
                f"supported: {', '.join(SUPPORTED_STAGES)}"
            )
        kind, exporter = _EXPORTERS[name]
        if saved_at is not None and exporter is _forest:
            exporter = partial(_forest, saved=_saved_stage(saved_at, stage))
        stages.append({"type": kind, **exporter(stage)})
    try:
        return spec.Pipeline(stages=stages)
    except ValidationError as exc:
        problem = spec.ScoringFileError.of(exc)
        raise UnsupportedStageError(f"{problem.field}: {problem.problem}") from None
