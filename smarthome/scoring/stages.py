"""The feature stages of an exported pipeline, each once, vectorised over column arrays.

Each class reproduces one Spark transformer exactly, in float64, from its ``scoring.json``
parameters. ``transform`` reads and writes named columns: labels as lists, every numeric
column as a float64 array (n, width), a number being width 1. The API's one-row request
runs the same code on n = 1; each stage keeps to a few numpy calls (no reductions where a
lookup does) because per-call overhead, not arithmetic, is what one row costs.

Widths are checked once, when the pipeline is built (``widths``: numeric column -> width;
a raw input column is width 1), so ``transform`` does no shape checks per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smarthome.contracts import scoring_file as spec

Columns = dict[str, Any]
Widths = dict[str, int]


class StringIndexer:
    """Label -> its index in Spark's fitted order; unseen or null -> ``len(labels)`` ('keep')."""

    reads_labels = True

    def __init__(self, stage: spec.StringIndexer, widths: Widths):
        self.keep = stage.handleInvalid == "keep"
        self.inputs = list(stage.inputCols)
        self.outputs = list(stage.outputCols)
        self.index = [{label: float(i) for i, label in enumerate(ls)} for ls in stage.labels]
        widths.update(dict.fromkeys(self.outputs, 1))

    def transform(self, cols: Columns) -> None:
        for src, dst, index in zip(self.inputs, self.outputs, self.index, strict=True):
            unseen = float(len(index))
            labels = [v if v is None else str(v) for v in cols[src]]
            out = [index.get(label, unseen) for label in labels]
            if not self.keep and unseen in out:
                raise ValueError(f"{src}: unseen label {labels[out.index(unseen)]!r}")
            cols[dst] = np.array(out).reshape(-1, 1)


class OneHotEncoder:
    """Category index -> one-hot row, with Spark's sizes (dropLast and 'keep' drop/add a slot).

    ``searchsorted`` on the edges 0..size maps an index to its table row in one call: row 0
    and row size+1 are the invalid index (negative, too large or NaN), row 1+i category i
    (a fractional index truncates, as Spark's ``toInt``).
    """

    reads_labels = False

    def __init__(self, stage: spec.OneHotEncoder, widths: Widths):
        self.keep = stage.handleInvalid == "keep"
        self.inputs = list(stage.inputCols)
        self.outputs = list(stage.outputCols)
        self.encoders = []
        for src, dst, size in zip(self.inputs, self.outputs, stage.categorySizes, strict=True):
            if widths.get(src, 1) != 1:
                raise ValueError(f"{src}: a vector column, the encoder needs a category index")
            # 'keep' adds a slot for the invalid index, dropLast drops the last slot
            width = size + (1 if self.keep else 0) - (1 if stage.dropLast else 0)
            eye = np.eye(size + 1, width)  # row i: one-hot at i; row size: the invalid slot
            table = np.vstack([eye[size], eye[:size], eye[size]])
            invalid = np.zeros(size + 2, dtype=bool)
            invalid[[0, -1]] = True
            self.encoders.append((np.arange(size + 1, dtype=np.float64), table, invalid))
            widths[dst] = width

    def transform(self, cols: Columns) -> None:
        for src, dst, encoder in zip(self.inputs, self.outputs, self.encoders, strict=True):
            edges, table, invalid = encoder
            row = edges.searchsorted(cols[src].ravel(), side="right")
            if not self.keep and np.count_nonzero(invalid.take(row)):
                raise ValueError(f"{src}: category index out of range 0..{len(edges) - 2}")
            cols[dst] = table.take(row, axis=0)


class VectorAssembler:
    """Columns and vectors side by side, in order; NaN refused unless handleInvalid='keep'."""

    reads_labels = False

    def __init__(self, stage: spec.VectorAssembler, widths: Widths):
        self.inputs = list(stage.inputCols)
        self.outputs = [stage.outputCol]
        self.check_nan = stage.handleInvalid == "error"
        widths[stage.outputCol] = sum(widths.get(c, 1) for c in self.inputs)

    def transform(self, cols: Columns) -> None:
        out = np.concatenate([cols[c] for c in self.inputs], axis=1)
        if self.check_nan and np.count_nonzero(np.isnan(out)):
            names = ", ".join(self.inputs)
            raise ValueError(f"{self.outputs[0]}: a NaN or missing value among {names}")
        cols[self.outputs[0]] = out


class StandardScaler:
    """``(x - mean) * (1/std, or 0 where std == 0)``: no shift without withMean (as Spark)."""

    reads_labels = False

    def __init__(self, stage: spec.StandardScaler, widths: Widths):
        self.inputs, self.outputs = [stage.inputCol], [stage.outputCol]
        if widths.get(stage.inputCol, 1) != len(stage.mean):
            raise ValueError(
                f"{stage.inputCol}: {len(stage.mean)} means for a vector of width "
                f"{widths.get(stage.inputCol, 1)}"
            )
        std = np.asarray(stage.std, dtype=np.float64)
        self.shift = np.asarray(stage.mean, dtype=np.float64) if stage.withMean else None
        self.scale = np.where(std == 0, 0.0, 1.0 / np.where(std == 0, 1.0, std))
        if not stage.withStd:
            self.scale = None
        widths[stage.outputCol] = len(stage.mean)

    def transform(self, cols: Columns) -> None:
        x = cols[self.inputs[0]]
        if self.shift is not None:
            x = x - self.shift
        if self.scale is not None:
            x = x * self.scale
        cols[self.outputs[0]] = x


FeatureStage = StringIndexer | OneHotEncoder | VectorAssembler | StandardScaler
BY_TYPE: dict[str, type[FeatureStage]] = {
    "StringIndexer": StringIndexer,
    "OneHotEncoder": OneHotEncoder,
    "VectorAssembler": VectorAssembler,
    "StandardScaler": StandardScaler,
}
