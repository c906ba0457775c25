"""A published model set, scored with numpy only, exactly as ``PipelineModel.transform`` would.

Training exports every fitted parameter to ``scoring.json`` (``smarthome.contracts.
scoring_file``); ``PipelineScorer`` runs one pipeline's stages (``stages``, ``estimators``)
on the rows of a request, and ``ModelSet`` is what the API holds: the three pipelines plus
the set's manifest and cluster profiles. The API answers in microseconds and never starts a
JVM, so nothing here may import pyspark (a test checks it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smarthome.contracts import model_sets as registry
from smarthome.contracts import scoring_file as spec
from smarthome.scoring import estimators, stages
from smarthome.scoring.estimators import ScoreResult

__all__ = ["ModelSet", "ModelSetError", "PipelineScorer", "ScoreResult"]


class ModelSetError(Exception):
    """A model-set folder is missing a file or holds a corrupt one; ``reason`` says which."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class PipelineScorer:
    """One exported pipeline: its feature stages, then the estimator that gives the result."""

    def __init__(self, pipeline: spec.Pipeline):
        widths: stages.Widths = {}
        self.input_columns: list[str] = []  # raw columns a row must carry, in first-use order
        self.label_columns: list[str] = []  # of those, the ones read as labels
        self.stages: list[stages.FeatureStage] = []
        for i, stage in enumerate(pipeline.features):
            try:
                built = stages.BY_TYPE[stage.type](stage, widths)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ValueError(f"stages[{i}] ({stage.type}): {exc}") from None
            for column in built.inputs:
                if column not in widths and column not in self.input_columns:
                    self.input_columns.append(column)
                    if built.reads_labels:
                        self.label_columns.append(column)
            self.stages.append(built)
        model = pipeline.estimator
        self.features = model.featuresCol
        given = widths.get(self.features)
        if given != model.numFeatures:
            raise ValueError(
                f"stages[{len(self.stages)}] ({model.type}): expects {model.numFeatures} "
                f"features in {self.features!r}, the stages before it give {given}"
            )
        self.estimator = estimators.BY_TYPE[model.type](model)  # type: ignore[arg-type]
        self.numeric_columns = [c for c in self.input_columns if c not in self.label_columns]

    def columns(self, rows: Sequence[Mapping[str, Any]]) -> stages.Columns:
        """The input columns of ``rows`` (``stages`` says how a column holds its values).

        Numbers are read as numpy's float64 reads them (ints, bools, None as NaN, numeric
        strings), for one row as for many.
        """
        if not rows:
            raise ValueError("no rows to score")
        try:
            if len(rows) == 1:
                row = rows[0]
                cols: stages.Columns = {c: row[c] for c in self.label_columns}
                cols.update((c, _number(row[c])) for c in self.numeric_columns)
                return cols
            cols = {c: [row[c] for row in rows] for c in self.label_columns}
            numbers = np.array([[row[c] for c in self.numeric_columns] for row in rows], float)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}: missing from a row; it is required") from None
        except (TypeError, ValueError, OverflowError):
            names = ", ".join(self.numeric_columns)
            raise ValueError(f"every value of {names} must be a number") from None
        if numbers.ndim != 2:
            names = ", ".join(self.numeric_columns)
            raise ValueError(f"every value of {names} must be a number")
        cols.update(zip(self.numeric_columns, numbers.T.copy(), strict=True))  # an array each
        return cols

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> ScoreResult:
        """Score every row at once (extra keys are ignored); ValueError names a bad input."""
        cols, one_row = self.columns(rows), len(rows) == 1
        for stage in self.stages:
            stage.transform(cols, one_row)
        return self.estimator.predict(cols[self.features])


def _number(value: Any) -> float:
    """``value`` as numpy's float64 converts it: a float or int directly (the usual case,
    without a numpy call), anything else through ``np.float64``."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    return float(np.float64(value))


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


def load_scorers(data: Any) -> dict[str, PipelineScorer]:
    """One scorer per model from ``scoring.json``'s content; ModelSetError names the field."""
    try:
        scoring = spec.ScoringFile.parse(data)
    except spec.ScoringFileError as exc:
        raise ModelSetError(str(exc)) from None
    scorers = {}
    for name in registry.MODEL_NAMES:
        try:
            scorers[name] = PipelineScorer(getattr(scoring, name))
        except ValueError as exc:
            raise ModelSetError(f"{registry.SCORING}: {name}.{exc}") from None
    return scorers


class ModelSet:
    """The three scorers of one published model-set folder (its ``scoring.json``), no Spark.

    The manifest and segment profiles are read through their contracts by whoever needs
    them (``smarthome.scoring.served``); scoring needs only ``scoring.json``.
    """

    def __init__(self, path: Path, scorers: dict[str, Any]):
        self.path = path
        self.name = path.name
        self.efficiency: PipelineScorer = scorers["efficiency"]
        self.malfunction: PipelineScorer = scorers["malfunction"]
        self.clustering: PipelineScorer = scorers["clustering"]

    @classmethod
    def load(cls, set_dir: Path) -> ModelSet:
        """Read scoring.json; ModelSetError says what is wrong with it."""
        set_dir = Path(set_dir)
        if not set_dir.is_dir():
            raise ModelSetError(f"{set_dir}: not a model set folder")
        return cls(set_dir, load_scorers(_read_json(set_dir, registry.SCORING)))

    def predict_efficiency(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, float]]:
        """(class 0/1, probability of that class) per row."""
        result = self.efficiency.predict(rows)
        classes = result.prediction.astype(np.int64)
        chosen = result.probability[np.arange(len(classes)), classes]  # type: ignore[index]
        return list(zip(classes.tolist(), chosen.tolist(), strict=True))

    def predict_malfunction(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        return self.malfunction.predict(rows).prediction.tolist()

    def segment(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        return self.clustering.predict(rows).prediction.astype(np.int64).tolist()
