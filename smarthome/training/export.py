"""Export a fitted Spark ``PipelineModel`` to a JSON-able dict that ``smarthome.scoring`` evaluates.

Runs in the training process (it needs pyspark and, for trees, the active SparkSession). The
dict holds every fitted parameter in full float64 precision (JSON floats round-trip exactly),
so the API can score with numpy exactly as ``PipelineModel.transform`` would (DESIGN §7).

Stages are walked generically: each stage's input/output columns come from its params, so any
order of the supported stages works. An unsupported stage raises ``UnsupportedStageError``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

#: version of the exported dict's layout (scoring.py refuses other versions)
EXPORT_FORMAT = 1


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


def _predictor_cols(stage: Any) -> dict[str, Any]:
    return {
        "featuresCol": _param(stage, "featuresCol", "features"),
        "predictionCol": _param(stage, "predictionCol", "prediction"),
        "probabilityCol": _param(stage, "probabilityCol", ""),
        "numFeatures": int(stage.numFeatures) if hasattr(stage, "numFeatures") else None,
    }


def _refuse_thresholds(stage: Any) -> None:
    """Class thresholds change the predicted class; only LR's binary threshold is reproduced."""
    if stage.hasParam("thresholds") and stage.isSet(stage.getParam("thresholds")):
        raise UnsupportedStageError(
            f"{type(stage).__name__}: the 'thresholds' param is set; the numpy scorer does not "
            "reproduce class thresholds, leave it unset"
        )


def _logistic(stage: Any) -> dict[str, Any]:
    family = _param(stage, "family", "auto")
    num_classes = int(stage.numClasses)
    multinomial = family == "multinomial" or (family == "auto" and num_classes > 2)
    out = {**_predictor_cols(stage), "numClasses": num_classes, "multinomial": multinomial}
    if multinomial:
        _refuse_thresholds(stage)
        matrix = stage.coefficientMatrix.toArray()
        out["coefficients"] = [_floats(row) for row in matrix]
        out["intercepts"] = _floats(stage.interceptVector.toArray())
    else:
        out["coefficients"] = _floats(stage.coefficients.toArray())
        out["intercept"] = float(stage.intercept)
        out["threshold"] = float(stage.getThreshold())
    return out


def _linear(stage: Any) -> dict[str, Any]:
    return {
        **_predictor_cols(stage),
        "coefficients": _floats(stage.coefficients.toArray()),
        "intercept": float(stage.intercept),
    }


def _kmeans(stage: Any) -> dict[str, Any]:
    measure = _param(stage, "distanceMeasure", "euclidean")
    if measure not in ("euclidean", "cosine"):
        raise UnsupportedStageError(f"KMeansModel: unknown distanceMeasure {measure!r}")
    return {
        **_predictor_cols(stage),
        "distanceMeasure": measure,
        "centers": [_floats(c) for c in stage.clusterCenters()],
    }


def _read_tree_nodes(stage: Any, ensemble: bool) -> dict[int, list[Any]]:
    """Node rows per tree id, read back from the model's own saved Parquet data.

    Walking the JVM tree node by node over py4j takes seconds for a forest; the saved data
    holds the same doubles (threshold, leaf stats) in one read.
    """
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    tmp = Path(tempfile.mkdtemp(prefix="smarthome-export-"))
    try:
        path = (tmp / "model").as_uri()
        stage.write().save(path)
        data = spark.read.parquet(f"{path}/data")
        trees: dict[int, list[Any]] = {}
        if ensemble:
            for row in data.collect():
                trees.setdefault(int(row["treeID"]), []).append(row["nodeData"])
        else:
            trees[0] = data.collect()
        return trees
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tree_arrays(nodes: list[Any], leaf_counts: bool) -> dict[str, Any]:
    """One tree as parallel per-node arrays indexed by node id (leaves: feature -1).

    ``value`` holds a leaf's class counts (``leaf_counts``) or its prediction; for inner
    nodes an empty list or 0.0. Categorical splits list their left categories by node id.
    """
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
        if leaf_counts:
            value.append(_floats(n["impurityStats"]) if leaf else [])
        else:
            value.append(float(n["prediction"]) if leaf else 0.0)
    return {
        "feature": feature,
        "threshold": threshold,
        "left": left,
        "right": right,
        "leftCategories": categories,
        "value": value,
    }


def _trees(stage: Any, kind: str) -> dict[str, Any]:
    classifier = kind.endswith("Classifier")
    ensemble = not kind.startswith("DecisionTree")
    if classifier:
        _refuse_thresholds(stage)
    # GBT classifiers are sums of regression trees: their leaves hold a value, not class counts
    leaf_counts = classifier and not kind.startswith("GBT")
    nodes = _read_tree_nodes(stage, ensemble)
    trees = [_tree_arrays(nodes[i], leaf_counts) for i in sorted(nodes)]
    weights = _floats(stage.treeWeights) if ensemble else [1.0]
    if len(weights) != len(trees):
        raise UnsupportedStageError(f"{kind}: {len(trees)} trees but {len(weights)} weights")
    out = {**_predictor_cols(stage), "trees": trees, "treeWeights": weights}
    if classifier:
        out["numClasses"] = int(stage.numClasses)
    return out


#: pyspark model class name -> (exported type, exporter)
_EXPORTERS: dict[str, tuple[str, Any]] = {
    "StringIndexerModel": ("StringIndexer", _string_indexer),
    "OneHotEncoderModel": ("OneHotEncoder", _one_hot),
    "VectorAssembler": ("VectorAssembler", _assembler),
    "StandardScalerModel": ("StandardScaler", _scaler),
    "LogisticRegressionModel": ("LogisticRegression", _logistic),
    "LinearRegressionModel": ("LinearRegression", _linear),
    "KMeansModel": ("KMeans", _kmeans),
}
_TREE_MODELS = {
    "DecisionTreeClassificationModel": "DecisionTreeClassifier",
    "DecisionTreeRegressionModel": "DecisionTreeRegressor",
    "RandomForestClassificationModel": "RandomForestClassifier",
    "RandomForestRegressionModel": "RandomForestRegressor",
    "GBTClassificationModel": "GBTClassifier",
    "GBTRegressionModel": "GBTRegressor",
}
SUPPORTED_STAGES = sorted([*_EXPORTERS, *_TREE_MODELS, "PipelineModel"])


def _flatten(model: Any) -> list[Any]:
    if type(model).__name__ == "PipelineModel":
        return [s for stage in model.stages for s in _flatten(stage)]
    return [model]


def export_stage(stage: Any) -> dict[str, Any]:
    """One fitted stage as a dict with ``type`` and its fitted parameters."""
    name = type(stage).__name__
    if name in _TREE_MODELS:
        kind = _TREE_MODELS[name]
        return {"type": kind, **_trees(stage, kind)}
    if name not in _EXPORTERS:
        raise UnsupportedStageError(
            f"cannot export pipeline stage {name} for scoring without Spark; "
            f"supported: {', '.join(SUPPORTED_STAGES)}"
        )
    kind, exporter = _EXPORTERS[name]
    return {"type": kind, **exporter(stage)}


def export_pipeline(model: Any) -> dict[str, Any]:
    """A fitted ``PipelineModel`` (or single fitted stage) as a JSON-able dict for scoring.py.

    The last stage that predicts (classifier, regressor or KMeans) gives the pipeline's result.
    """
    stages = [export_stage(s) for s in _flatten(model)]
    if not any("predictionCol" in s for s in stages):
        raise UnsupportedStageError("the pipeline has no predicting stage (estimator model)")
    return {"format": EXPORT_FORMAT, "stages": stages}
