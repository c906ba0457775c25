"""Score exported Spark pipelines with numpy only, exactly as ``PipelineModel.transform`` would.

``smarthome.training.export`` writes every fitted parameter to ``scoring.json`` at training
time; this module evaluates them in float64 with Spark's own formulas (DESIGN §7), so the API
answers in microseconds and never starts a JVM. It must never import pyspark.

Spark semantics reproduced here:
- StringIndexer: labels in Spark's fitted order; unseen or null -> ``numLabels`` ('keep').
- OneHotEncoder: Spark's configured sizes (dropLast / 'keep' add or drop the last slot).
- StandardScaler: ``(x - mean) * (1/std, or 0 where std == 0)``; no shift without withMean.
- Trees: ``x <= threshold`` goes left; a categorical split goes left if x is a left category.
- RandomForest classifier: sum of per-tree normalised leaf counts, then normalised.
- GBT classifier: ``p0 = 1/(1+exp(2m))``, ``p1 = 1 - p0``; class 1 iff ``m > 0``.
- LogisticRegression (binary): ``p = 1/(1+exp(-raw))`` on raw ``[-m, m]``; class 1 iff
  ``m > log(t/(1-t))``. Multinomial: Spark's shifted softmax.
- KMeans: nearest center, ties to the lowest index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smarthome.contracts import model_sets as registry
from smarthome.scoring import row as scoring_row
from smarthome.scoring.row import Fallback, RowStep, Values

EXPORT_FORMAT = 1
Columns = dict[str, Any]  # column name -> list (strings) or float64 array (n,) / (n, d)
#: a feature stage: the vectorised step, and the same step for one row (``scoring_row``)
Stage = tuple[Callable[[Columns], None], RowStep]


@dataclass
class ScoreResult:
    """One entry per row: class (float, like Spark), regression value, or cluster id."""

    prediction: np.ndarray
    probability: np.ndarray | None  # (n, classes) for classifiers, else None


class ModelSetError(Exception):
    """A model-set folder is missing a file or holds a corrupt one; ``reason`` says which."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _f64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _cumsum_last(a: np.ndarray, axis: int) -> np.ndarray:
    """Left-to-right sum along ``axis`` (Scala's ``sum``; numpy's own sum is pairwise)."""
    return np.take(np.cumsum(a, axis=axis), -1, axis=axis)


# ---------------------------------------------------------------- feature stages


def _string_indexer(d: Mapping[str, Any]) -> Stage:
    keep = d["handleInvalid"] == "keep"
    maps = [{label: float(i) for i, label in enumerate(labels)} for labels in d["labels"]]
    pairs = list(zip(d["inputCols"], d["outputCols"], maps, strict=True))

    def apply(cols: Columns) -> None:
        for src, dst, mapping in pairs:
            unseen = float(len(mapping))
            out = []
            for value in cols[src]:
                index = mapping.get(value if value is None else str(value))
                if index is None:
                    if not keep:
                        raise ValueError(f"{src}: unseen label {value!r}")
                    index = unseen
                out.append(index)
            cols[dst] = _f64(out)

    return apply, scoring_row.ROW_STAGES["StringIndexer"](d)


def _one_hot(d: Mapping[str, Any]) -> Stage:
    keep = d["handleInvalid"] == "keep"
    drop_last = bool(d["dropLast"])
    specs = []
    for src, dst, size in zip(d["inputCols"], d["outputCols"], d["categorySizes"], strict=True):
        width = size + 1 if keep and not drop_last else size - 1 if drop_last and not keep else size
        # row i = the encoding of index i; rows `size` and -1 (last) encode an invalid index
        table = np.zeros((size + 2, width))
        table[np.arange(min(size + 1, width)), np.arange(min(size + 1, width))] = 1.0
        table[-1] = table[size]
        specs.append((src, dst, int(size), table))

    def apply(cols: Columns) -> None:
        for src, dst, size, table in specs:
            label = cols[src]
            if not keep and len(label) and (label.min() < 0 or label.max() >= size):
                raise ValueError(f"{src}: category index out of range 0..{size - 1}")
            cols[dst] = table.take(np.clip(label, -1, size).astype(np.int64), axis=0)

    return apply, scoring_row.ROW_STAGES["OneHotEncoder"](d, [spec[3] for spec in specs])


def _assembler(d: Mapping[str, Any]) -> Stage:
    inputs, output = list(d["inputCols"]), d["outputCol"]
    check_nan = d.get("handleInvalid", "error") != "keep"

    def apply(cols: Columns) -> None:
        parts = [cols[c] for c in inputs]
        widths = [1 if p.ndim == 1 else p.shape[1] for p in parts]
        out = np.empty((len(parts[0]), sum(widths)))
        at = 0
        for part, width in zip(parts, widths, strict=True):
            if part.ndim == 1:
                out[:, at] = part
            else:
                out[:, at : at + width] = part
            at += width
        if check_nan and np.isnan(out).any():
            raise ValueError(f"{output}: a NaN or missing value among {', '.join(inputs)}")
        cols[output] = out

    return apply, scoring_row.ROW_STAGES["VectorAssembler"](d)


def _scaler(d: Mapping[str, Any]) -> Stage:
    src, dst = d["inputCol"], d["outputCol"]
    shift = _f64(d["mean"]) if d["withMean"] else None
    std = _f64(d["std"])
    scale = None
    if d["withStd"]:
        safe = np.where(std == 0, 1.0, std)
        scale = np.where(std == 0, 0.0, 1.0 / safe)

    def apply(cols: Columns) -> None:
        x = cols[src]
        if shift is not None:
            x = x - shift
        if scale is not None:
            x = x * scale
        cols[dst] = x

    return apply, scoring_row.ROW_STAGES["StandardScaler"](d, shift, scale)


# ---------------------------------------------------------------- predictors


class _Predictor:
    """A final estimator: reads the feature matrix, returns (prediction, probability)."""

    def __init__(self, d: Mapping[str, Any]):
        self.features = d["featuresCol"]
        self.num_features = d.get("numFeatures")

    def matrix(self, cols: Columns) -> np.ndarray:
        x = cols[self.features]
        if self.num_features is not None and x.shape[1] != self.num_features:
            raise ValueError(
                f"{self.features}: {x.shape[1]} features, the model expects {self.num_features}"
            )
        return x

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


class _Logistic(_Predictor):
    def __init__(self, d: Mapping[str, Any]):
        super().__init__(d)
        self.multinomial = bool(d["multinomial"])
        if self.multinomial:
            self.coef = _f64(d["coefficients"])
            self.intercepts = _f64(d["intercepts"])
        else:
            self.coef = _f64(d["coefficients"])
            self.intercept = float(d["intercept"])
            t = float(d["threshold"])
            self.raw_threshold = (
                -math.inf if t == 0 else math.inf if t == 1 else math.log(t / (1 - t))
            )

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.multinomial:
            m = x @ self.coef + self.intercept
            with np.errstate(over="ignore"):  # exp overflow -> inf -> probability 0, as in Java
                prob = np.column_stack([1.0 / (1.0 + np.exp(m)), 1.0 / (1.0 + np.exp(-m))])
            return (m > self.raw_threshold).astype(np.float64), prob
        raw = x @ self.coef.T + self.intercepts
        top = raw.max(axis=1, keepdims=True)
        e = np.exp(np.where(top > 0, raw - top, raw))
        prob = e * (1.0 / _cumsum_last(e, 1))[:, None]
        return np.argmax(raw, axis=1).astype(np.float64), prob


class _Linear(_Predictor):
    def __init__(self, d: Mapping[str, Any]):
        super().__init__(d)
        self.coef = _f64(d["coefficients"])
        self.intercept = float(d["intercept"])

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return x @ self.coef + self.intercept, None


class _KMeans(_Predictor):
    def __init__(self, d: Mapping[str, Any]):
        super().__init__(d)
        self.centers = _f64(d["centers"])
        self.cosine = d["distanceMeasure"] == "cosine"
        self.center_norms = np.sqrt((self.centers**2).sum(axis=1))

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.cosine:
            norms = np.sqrt((x**2).sum(axis=1))
            dist = 1.0 - (x @ self.centers.T) / norms[:, None] / self.center_norms
        else:
            diff = x[:, None, :] - self.centers[None, :, :]
            dist = (diff * diff).sum(axis=2)
        return np.argmin(dist, axis=1).astype(np.float64), None  # argmin: lowest index on ties


class _Forest(_Predictor):
    """Every tree of a model in flat node arrays, evaluated for all rows and trees per level.

    Leaves loop to themselves (threshold +inf), so ``depth`` steps land every row on a leaf.
    """

    def __init__(self, d: Mapping[str, Any]):
        super().__init__(d)
        self.kind = d["type"]
        trees = d["trees"]
        self.weights = _f64(d["treeWeights"])
        self.num_classes = int(d.get("numClasses", 0))
        feature, threshold, left, right, roots, values = [], [], [], [], [], []
        self.categories: dict[int, np.ndarray] = {}
        depth, offset = 0, 0
        for tree in trees:
            n = len(tree["feature"])
            ids = np.arange(n) + offset
            features = np.asarray(tree["feature"], dtype=np.int64)
            leaf = features < 0
            feature.append(np.where(leaf, 0, features))
            threshold.append(np.where(leaf, np.inf, _f64(tree["threshold"])))
            left.append(np.where(leaf, ids, np.asarray(tree["left"], dtype=np.int64) + offset))
            right.append(np.where(leaf, ids, np.asarray(tree["right"], dtype=np.int64) + offset))
            for node, cats in tree["leftCategories"].items():
                self.categories[int(node) + offset] = _f64(cats)
            values.extend(tree["value"])
            roots.append(offset)
            depth = max(depth, _depth(tree))
            offset += n
        self.feature = np.concatenate(feature).astype(np.int64)
        self.threshold = np.concatenate(threshold)
        self.child = np.empty(2 * offset, dtype=np.int64)  # node k: left at 2k, right at 2k+1
        self.child[0::2] = np.concatenate(left)
        self.child[1::2] = np.concatenate(right)
        self.is_categorical = np.zeros(offset, dtype=bool)
        self.is_categorical[list(self.categories)] = True
        self.roots = np.array(roots, dtype=np.int64)
        self.depth = depth
        self.left = self.child[0::2].copy()  # contiguous, for the one-row path
        self.right = self.child[1::2].copy()
        self.leaf_value = self._leaf_values(values, offset)

    def _leaf_values(self, values: list[Any], count: int) -> np.ndarray:
        if self.kind not in ("DecisionTreeClassifier", "RandomForestClassifier"):
            return _f64(values)
        counts = np.zeros((count, self.num_classes))
        for node, stats in enumerate(values):
            if stats:
                counts[node] = stats
        if self.kind == "DecisionTreeClassifier":
            return counts
        total = _cumsum_last(counts, 1)[:, None]  # RF votes with each tree's normalised counts
        return np.where(total != 0, counts / np.where(total == 0, 1.0, total), 0.0)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf node id reached by each (row, tree): shape (n, trees)."""
        n, width = x.shape
        if n == 1 and not self.categories:
            return self._one_row_leaves(x[0])[None, :]
        trees = len(self.roots)
        flat = x.ravel()
        node = np.tile(self.roots, n)
        base = np.repeat(np.arange(n, dtype=np.int64) * width, trees) if n > 1 else None
        has_nan = bool(np.isnan(flat).any())  # NaN <= t is false: NaN goes right, as in Spark
        for _ in range(self.depth):
            feature = self.feature.take(node)
            if base is not None:
                feature += base
            value = flat.take(feature)
            threshold = self.threshold.take(node)
            go_right = ~(value <= threshold) if has_nan else value > threshold
            if self.categories:
                self._categorical(node, value, go_right)
            node = self.child.take(node * 2 + go_right)
        return node.reshape(n, trees)

    def _one_row_leaves(self, row: np.ndarray) -> np.ndarray:
        """One row (the API's usual request): decide every node's branch at once, then walk.

        About 10 numpy calls instead of ~6 per level: per-call overhead, not arithmetic,
        dominates one row. Same comparison as ``leaves`` (``value <= threshold`` goes left,
        NaN goes right; a leaf's children are itself), so the same leaves.
        """
        step = np.where(row.take(self.feature) <= self.threshold, self.left, self.right)
        node = self.roots
        for _ in range(self.depth):
            node = step.take(node)
        return node

    def _categorical(self, node: np.ndarray, value: np.ndarray, go_right: np.ndarray) -> None:
        """Categorical splits: left iff the value is one of the node's left categories."""
        for pos in np.nonzero(self.is_categorical.take(node))[0]:
            go_right[pos] = not np.isin(value[pos], self.categories[int(node[pos])])

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        kind = self.kind
        if kind == "RandomForestClassifier" and len(x) == 1:  # the API's request: fewer calls
            votes = np.add.accumulate(self.leaf_value.take(self.leaves(x)[0], axis=0))[-1:]
            total = np.add.accumulate(votes[0])[-1]  # left to right, as _cumsum_last
            return _f64([votes.argmax()]), votes / total
        values = self.leaf_value.take(self.leaves(x), axis=0)  # (n, trees[, classes])
        if kind == "DecisionTreeRegressor":
            return values[:, 0], None
        if kind == "RandomForestRegressor":
            return _cumsum_last(values, 1) / values.shape[1], None
        if kind in ("GBTRegressor", "GBTClassifier"):
            margin = values @ self.weights
            if kind == "GBTRegressor":
                return margin, None
            with np.errstate(over="ignore"):
                p0 = 1.0 / (1.0 + np.exp(2.0 * margin))
            return (margin > 0).astype(np.float64), np.column_stack([p0, 1.0 - p0])
        raw = values[:, 0, :] if kind == "DecisionTreeClassifier" else _cumsum_last(values, 1)
        total = _cumsum_last(raw, 1)[:, None]
        return np.argmax(raw, axis=1).astype(np.float64), raw / total


def _depth(tree: Mapping[str, Any]) -> int:
    """Edges on the longest root-to-leaf path."""
    left, right = tree["left"], tree["right"]
    deepest, stack = 0, [(0, 0)]
    while stack:
        node, level = stack.pop()
        if left[node] < 0:
            deepest = max(deepest, level)
        else:
            stack += [(left[node], level + 1), (right[node], level + 1)]
    return deepest


_FEATURE_STAGES = {
    "StringIndexer": _string_indexer,
    "OneHotEncoder": _one_hot,
    "VectorAssembler": _assembler,
    "StandardScaler": _scaler,
}
_PREDICTORS: dict[str, type[_Predictor]] = {
    "LogisticRegression": _Logistic,
    "LinearRegression": _Linear,
    "KMeans": _KMeans,
    **{
        kind: _Forest
        for kind in (
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "RandomForestClassifier",
            "RandomForestRegressor",
            "GBTClassifier",
            "GBTRegressor",
        )
    },
}


def _stage_inputs(d: Mapping[str, Any]) -> list[str]:
    if "inputCols" in d:
        return list(d["inputCols"])
    return [d.get("inputCol") or d["featuresCol"]]


def _stage_outputs(d: Mapping[str, Any]) -> list[str]:
    if "outputCols" in d:
        return list(d["outputCols"])
    if "outputCol" in d:
        return [d["outputCol"]]
    return [c for c in (d["predictionCol"], d.get("probabilityCol")) if c]


class PipelineScorer:
    """One exported pipeline: feature stages, then the estimator that gives the result."""

    def __init__(self, stages: list[Mapping[str, Any]]):
        self._steps: list[Callable[[Columns], None]] = []
        self._row_steps: list[RowStep] = []  # the feature stages, for one row
        self._row_predict: Callable[[Values], ScoreResult] | None = None
        row_path = True  # only for feature stages followed by one final predictor
        self.input_columns: list[str] = []  # raw columns a row must carry
        self.string_columns: set[str] = set()  # read as labels, not numbers
        produced: set[str] = set()
        self._result: tuple[str, str] | None = None
        for d in stages:
            kind = d["type"]
            for col in _stage_inputs(d):
                if col not in produced and col not in self.input_columns:
                    self.input_columns.append(col)
                    if kind == "StringIndexer":
                        self.string_columns.add(col)
            row_path = row_path and self._result is None
            if kind in _FEATURE_STAGES:
                step, row_step = _FEATURE_STAGES[kind](d)
                self._steps.append(step)
                self._row_steps.append(row_step)
            elif kind in _PREDICTORS:
                model = _PREDICTORS[kind](d)
                self._steps.append(self._predict_step(model, d))
                self._result = (d["predictionCol"], d.get("probabilityCol") or "")
                self._row_predict = self._row_predict_step(model, d) if row_path else None
            else:
                raise ValueError(f"unsupported stage type {kind!r}")
            produced.update(_stage_outputs(d))
        if self._result is None:
            raise ValueError("the pipeline has no predicting stage")
        if not row_path:
            self._row_predict = None
        self.numeric_columns = [c for c in self.input_columns if c not in self.string_columns]

    @staticmethod
    def _predict_step(model: _Predictor, d: Mapping[str, Any]) -> Callable[[Columns], None]:
        prediction_col, probability_col = d["predictionCol"], d.get("probabilityCol") or ""

        def apply(cols: Columns) -> None:
            prediction, probability = model.score(model.matrix(cols))
            cols[prediction_col] = prediction
            if probability_col and probability is not None:
                cols[probability_col] = probability

        return apply

    @staticmethod
    def _row_predict_step(
        model: _Predictor, d: Mapping[str, Any]
    ) -> Callable[[Values], ScoreResult]:
        """The predictor on one row's feature vector (the one-row path's last step)."""
        features, with_probability = d["featuresCol"], bool(d.get("probabilityCol"))

        def apply(values: Values) -> ScoreResult:
            vector = values.get(features)
            if type(vector) is not list:
                raise Fallback
            prediction, probability = model.score(model.matrix({features: _f64([vector])}))
            return ScoreResult(prediction, probability if with_probability else None)

        return apply

    @classmethod
    def from_dict(cls, d: dict) -> PipelineScorer:
        """Build from ``export_pipeline``'s dict (one entry of scoring.json)."""
        if not isinstance(d, Mapping) or d.get("format") != EXPORT_FORMAT:
            got = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(f"export format must be {EXPORT_FORMAT} (got {got!r})")
        return cls(list(d["stages"]))

    def columns(self, rows: Sequence[Mapping[str, Any]]) -> Columns:
        """The input columns of ``rows``: labels as lists, numbers as float64 arrays."""
        cols: Columns = {}
        try:
            for col in self.string_columns:
                cols[col] = [row[col] for row in rows]
            numeric = [[row[c] for c in self.numeric_columns] for row in rows]
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}: missing from a row; it is required") from None
        try:
            matrix = np.array(numeric, dtype=np.float64).reshape(len(rows), -1)
        except (TypeError, ValueError):
            names = ", ".join(self.numeric_columns)
            raise ValueError(f"every value of {names} must be a number") from None
        for j, col in enumerate(self.numeric_columns):
            cols[col] = matrix[:, j]
        return cols

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> ScoreResult:
        """Score every row at once (extra keys in a row are ignored)."""
        if len(rows) == 1 and self._row_predict is not None:
            try:
                return self._predict_one(rows[0])
            except Fallback:
                pass  # the vectorised path scores it or words the error
        return self.predict_vectorised(rows)

    def predict_vectorised(self, rows: Sequence[Mapping[str, Any]]) -> ScoreResult:
        """``predict`` without the one-row path (tests compare the two)."""
        cols = self.columns(rows)
        for step in self._steps:
            step(cols)
        prediction_col, probability_col = self._result  # type: ignore[misc]
        probability = cols.get(probability_col) if probability_col else None
        return ScoreResult(prediction=cols[prediction_col], probability=probability)

    def _predict_one(self, row: Mapping[str, Any]) -> ScoreResult:
        """One row with Python floats up to the predictor: same values, far fewer numpy calls."""
        values = scoring_row.read_row(row, self.string_columns, self.numeric_columns)
        for step in self._row_steps:
            step(values)
        return self._row_predict(values)  # type: ignore[misc]


def _read_json(set_dir: Path, name: str) -> Any:
    path = set_dir / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelSetError(f"{name}: missing from {set_dir}") from None
    except OSError as exc:
        raise ModelSetError(f"{name}: cannot be read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelSetError(f"{name}: not valid JSON ({exc})") from None


class ModelSet:
    """One published model-set folder, scored without Spark."""

    def __init__(self, path: Path, manifest: dict, clusters: Any, scorers: dict[str, Any]):
        self.path = path
        self.name = path.name
        self.manifest = manifest
        self.clusters = clusters
        self.efficiency: PipelineScorer = scorers["efficiency"]
        self.malfunction: PipelineScorer = scorers["malfunction"]
        self.clustering: PipelineScorer = scorers["clustering"]

    @classmethod
    def load(cls, set_dir: Path) -> ModelSet:
        """Read scoring.json, manifest.json and clusters.json; ModelSetError says what's wrong."""
        set_dir = Path(set_dir)
        if not set_dir.is_dir():
            raise ModelSetError(f"{set_dir}: not a model set folder")
        manifest = _read_json(set_dir, registry.MANIFEST)
        if not isinstance(manifest, dict):
            raise ModelSetError(f"{registry.MANIFEST}: must be a JSON object")
        clusters = _read_json(set_dir, registry.CLUSTERS)
        if not isinstance(clusters, (dict, list)):
            raise ModelSetError(f"{registry.CLUSTERS}: must be a JSON object or list")
        scoring = _read_json(set_dir, registry.SCORING)
        if not isinstance(scoring, dict) or scoring.get("format") != EXPORT_FORMAT:
            got = scoring.get("format") if isinstance(scoring, dict) else type(scoring).__name__
            raise ModelSetError(f"{registry.SCORING}: format must be {EXPORT_FORMAT} (got {got!r})")
        scorers = {}
        for model in registry.MODEL_NAMES:
            if model not in scoring:
                raise ModelSetError(f"{registry.SCORING}: no {model!r} pipeline")
            try:
                scorers[model] = PipelineScorer.from_dict(scoring[model])
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ModelSetError(
                    f"{registry.SCORING}: {model} pipeline is corrupt ({detail})"
                ) from None
        return cls(set_dir, manifest, clusters, scorers)

    def predict_efficiency(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, float]]:
        """(class 0/1, probability of that class) per row."""
        result = self.efficiency.predict(rows)
        classes = result.prediction.astype(np.int64)
        if result.probability is None:
            raise ModelSetError("efficiency pipeline gives no probability")
        chosen = result.probability[np.arange(len(classes)), classes]
        return list(zip(classes.tolist(), chosen.tolist(), strict=True))

    def predict_malfunction(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        return self.malfunction.predict(rows).prediction.tolist()

    def segment(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        return self.clustering.predict(rows).prediction.astype(np.int64).tolist()
