"""The feature stages of an exported pipeline, each written once, for one row and for many.

Each class reproduces one Spark transformer exactly from its ``scoring.json`` parameters.
A column holds one value per row. For n rows: a float64 array (n,) of numbers, an int array
of category indexes, a list of labels, or a vector column as a matrix (n, width). For one row
(the API's usual request) the same without the row axis: a Python float, int or label, and
a vector as an array (width,). Python's and numpy's operators, indexing and broadcasting
then mean the same IEEE float64 arithmetic either way, so each stage's math is written once;
one row just skips the per-call overhead numpy would spend on length-1 arrays. A test checks
that one row gets the very bits it gets inside a batch. Only reading labels (``_per_row``),
``_any`` and joining columns (``VectorAssembler``) look at which of the two they have.

Widths are checked once, when the pipeline is built (``widths``: column -> a vector's width,
``Index`` for a StringIndexer's output, None for a number), so ``transform`` does no shape
checks per request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from smarthome.contracts import scoring_file as spec

Columns = dict[str, Any]


class Index(NamedTuple):
    """A category index column: whole numbers 0..count-1."""

    count: int


Widths = dict[str, "int | Index | None"]


def _per_row(fn: Callable[[Any], int], labels: Any, one_row: bool) -> Any:
    """``fn`` of every label: an int array for n rows, an int for one row."""
    if one_row:
        return fn(labels)
    return np.fromiter(map(fn, labels), dtype=np.int64, count=len(labels))


class _Positions(dict):
    """Label -> index; any other label -> ``unseen`` (a str() of a non-str label first, as
    Spark casts the column to string), without storing it."""

    def __init__(self, labels: list[str]):
        super().__init__((label, i) for i, label in enumerate(labels))
        self.unseen = len(labels)

    def __missing__(self, label: Any) -> int:
        if label is None or type(label) is str:
            return self.unseen
        return self.get(str(label), self.unseen)


def _any(flags: Any) -> bool:
    """True if any row's flag is set (a bool for one row, a bool array for n rows)."""
    return flags if type(flags) is bool else bool(flags.any())


class StringIndexer:
    """Label -> its index in Spark's fitted order; unseen or null -> ``len(labels)`` ('keep')."""

    reads_labels = True

    def __init__(self, stage: spec.StringIndexer, widths: Widths):
        self.inputs = list(stage.inputCols)
        self.outputs = list(stage.outputCols)
        self.keep = stage.handleInvalid == "keep"
        self.columns = [
            (src, dst, _Positions(labels))
            for src, dst, labels in zip(self.inputs, self.outputs, stage.labels, strict=True)
        ]
        for dst, labels in zip(self.outputs, stage.labels, strict=True):
            widths[dst] = Index(len(labels) + 1 if self.keep else len(labels))

    def transform(self, cols: Columns, one_row: bool) -> None:
        for src, dst, positions in self.columns:
            labels = cols[src]
            found = _per_row(positions.__getitem__, labels, one_row)
            if not self.keep and _any(found == positions.unseen):
                bad = labels if one_row else labels[int(np.argmax(found == positions.unseen))]
                raise ValueError(f"{src}: unseen label {bad!r}")
            cols[dst] = found


class OneHotEncoder:
    """Category index -> a row of its table: Spark's sizes, dropLast drops the last slot,
    'keep' adds one for an index at or beyond ``categorySize`` (which 'error' refuses).

    Its input must be a StringIndexer's output (as in every pipeline training fits): whole
    numbers from 0, so no NaN, negative or fractional index to handle.
    """

    reads_labels = False

    def __init__(self, stage: spec.OneHotEncoder, widths: Widths):
        self.keep = stage.handleInvalid == "keep"
        self.inputs = list(stage.inputCols)
        self.outputs = list(stage.outputCols)
        self.encoders = []
        for src, dst, size in zip(self.inputs, self.outputs, stage.categorySizes, strict=True):
            index = widths.get(src)
            if not isinstance(index, Index):
                raise ValueError(f"{src}: not a StringIndexer's output; the encoder needs one")
            width = size + (1 if self.keep else 0) - (1 if stage.dropLast else 0)
            eye = np.eye(size + 1, width)  # row i: category i; row size: an invalid index
            rows = max(size, index.count)
            table = np.vstack([eye[:size], np.repeat(eye[size:], rows - size + 1, axis=0)])
            # the usual case: the indexer gives no index the encoder would refuse
            refuse = not self.keep and index.count > size
            self.encoders.append((src, dst, size, table, refuse))
            widths[dst] = width

    def transform(self, cols: Columns, one_row: bool) -> None:
        for src, dst, size, table, refuse in self.encoders:
            index = cols[src]
            if refuse and _any(index >= size):
                raise ValueError(f"{src}: category index out of range 0..{size - 1}")
            cols[dst] = table[index]


class VectorAssembler:
    """Columns and vectors side by side, in order; NaN refused unless handleInvalid='keep'."""

    reads_labels = False

    def __init__(self, stage: spec.VectorAssembler, widths: Widths):
        self.inputs = list(stage.inputCols)
        self.output = stage.outputCol
        self.check_nan = stage.handleInvalid == "error"
        sizes = [widths.get(c) for c in self.inputs]
        self.parts = [(c, type(size) is int) for c, size in zip(self.inputs, sizes, strict=True)]
        widths[self.output] = sum(s if type(s) is int else 1 for s in sizes)  # type: ignore[misc]

    def transform(self, cols: Columns, one_row: bool) -> None:
        if one_row:  # numbers and vectors (width,) into one flat list, then one array
            flat: list[Any] = []
            for name, vector in self.parts:
                if vector:
                    flat += cols[name].tolist()
                else:
                    flat.append(cols[name])
            has_nan = any(map(math.isnan, flat))
            out = np.array(flat, dtype=np.float64)
        else:
            out = np.column_stack([cols[c] for c in self.inputs]).astype(np.float64, copy=False)
            has_nan = bool(np.isnan(out).any())
        if self.check_nan and has_nan:
            names = ", ".join(self.inputs)
            raise ValueError(f"{self.output}: a NaN or missing value among {names}")
        cols[self.output] = out


class StandardScaler:
    """``(x - mean) * (1/std, or 0 where std == 0)``: no shift without withMean (as Spark)."""

    reads_labels = False

    def __init__(self, stage: spec.StandardScaler, widths: Widths):
        self.inputs, self.output = [stage.inputCol], stage.outputCol
        if widths.get(stage.inputCol) != len(stage.mean):
            raise ValueError(
                f"{stage.inputCol}: {len(stage.mean)} means for a vector of width "
                f"{widths.get(stage.inputCol)}"
            )
        std = np.asarray(stage.std, dtype=np.float64)
        self.shift = np.asarray(stage.mean, dtype=np.float64) if stage.withMean else None
        self.scale = np.where(std == 0, 0.0, 1.0 / np.where(std == 0, 1.0, std))
        if not stage.withStd:
            self.scale = None
        widths[self.output] = len(stage.mean)

    def transform(self, cols: Columns, one_row: bool) -> None:
        x = cols[self.inputs[0]]
        if self.shift is not None:
            x = x - self.shift
            if self.scale is not None:
                x *= self.scale  # x is ours now: no second array
        elif self.scale is not None:
            x = x * self.scale
        cols[self.output] = x


FeatureStage = StringIndexer | OneHotEncoder | VectorAssembler | StandardScaler
BY_TYPE: dict[str, type[FeatureStage]] = {
    "StringIndexer": StringIndexer,
    "OneHotEncoder": OneHotEncoder,
    "VectorAssembler": VectorAssembler,
    "StandardScaler": StandardScaler,
}
