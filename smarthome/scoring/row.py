"""The feature stages of ``smarthome.scoring.model_set`` for ONE row, in plain Python floats.

The API scores one record per request; there numpy's per-call overhead (dozens of calls on
arrays of length 1) costs more than the arithmetic. These functions compute the same float64
values with the same IEEE operations in the same order (Python floats are float64), so the
feature vector is bit-identical to the vectorised path. Anything unusual (a missing key, a
non-number, an unseen label in error mode, NaN, an index out of range) raises ``Fallback``:
the caller then runs the vectorised path, which gives the answer or the error message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Values = dict[str, Any]  # column name -> float, str/None (labels) or list of floats (vector)
RowStep = Callable[[Values], None]
#: ints beyond this are converted by the vectorised path (no rounding question here)
_EXACT_INT = 2**53


class Fallback(Exception):
    """This row needs the vectorised path (to score it, or to word its error)."""


def read_row(
    row: Mapping[str, Any], string_columns: set[str], numeric_columns: list[str]
) -> Values:
    """The input columns of one row: labels as-is, numbers as Python floats."""
    values: Values = {}
    try:
        for col in string_columns:
            values[col] = row[col]
        for col in numeric_columns:
            value = row[col]
            kind = type(value)
            if kind is float:
                values[col] = value
            elif kind is int and -_EXACT_INT <= value <= _EXACT_INT:
                values[col] = float(value)
            else:
                raise Fallback
    except KeyError:
        raise Fallback from None
    return values


def _string_indexer(d: Mapping[str, Any]) -> RowStep:
    keep = d["handleInvalid"] == "keep"
    maps = [{label: float(i) for i, label in enumerate(labels)} for labels in d["labels"]]
    pairs = list(zip(d["inputCols"], d["outputCols"], maps, strict=True))

    def apply(values: Values) -> None:
        for src, dst, mapping in pairs:
            value = values[src]
            index = mapping.get(value if value is None else str(value))
            if index is None:
                if not keep:
                    raise Fallback
                index = float(len(mapping))
            values[dst] = index

    return apply


def _one_hot(d: Mapping[str, Any], tables: list[np.ndarray]) -> RowStep:
    keep = d["handleInvalid"] == "keep"
    specs = [
        (src, dst, int(size), table.tolist())
        for src, dst, size, table in zip(
            d["inputCols"], d["outputCols"], d["categorySizes"], tables, strict=True
        )
    ]

    def apply(values: Values) -> None:
        for src, dst, size, table in specs:
            label = values[src]
            if type(label) is not float or label != label:  # NaN: let numpy decide
                raise Fallback
            if not keep and (label < 0 or label >= size):
                raise Fallback
            # np.clip(label, -1, size).astype(int64): clip, then truncate toward zero
            values[dst] = table[int(min(max(label, -1.0), float(size)))]

    return apply


def _assembler(d: Mapping[str, Any]) -> RowStep:
    inputs, output = list(d["inputCols"]), d["outputCol"]
    check_nan = d.get("handleInvalid", "error") != "keep"

    def apply(values: Values) -> None:
        out: list[float] = []
        for col in inputs:
            part = values[col]
            if type(part) is list:
                out.extend(part)
            elif type(part) is float:
                out.append(part)
            else:
                raise Fallback
        if check_nan and any(v != v for v in out):
            raise Fallback
        values[output] = out

    return apply


def _scaler(d: Mapping[str, Any], shift: np.ndarray | None, scale: np.ndarray | None) -> RowStep:
    src, dst = d["inputCol"], d["outputCol"]
    shift_list = shift.tolist() if shift is not None else None
    scale_list = scale.tolist() if scale is not None else None
    params = (shift_list, scale_list)

    def apply(values: Values) -> None:
        x = values[src]
        if type(x) is not list or any(p is not None and len(p) != len(x) for p in params):
            raise Fallback  # numpy would broadcast or refuse: let it
        if shift_list is not None:
            x = [a - b for a, b in zip(x, shift_list, strict=True)]
        if scale_list is not None:
            x = [a * b for a, b in zip(x, scale_list, strict=True)]
        values[dst] = x

    return apply


ROW_STAGES: dict[str, Callable[..., RowStep]] = {
    "StringIndexer": _string_indexer,
    "OneHotEncoder": _one_hot,
    "VectorAssembler": _assembler,
    "StandardScaler": _scaler,
}
