"""``scoring.json``: every fitted parameter of a set's three pipelines, as typed models.

Training writes the file through these models (``smarthome.training.export``) and the API
reads it back through them (``smarthome.scoring``), so a renamed or missing field is one
clear error naming the field, never a ``KeyError`` at the first request. Only the stage
kinds training fits exist here (``smarthome.training.pipelines``): StringIndexer,
OneHotEncoder, VectorAssembler, StandardScaler, then RandomForestClassifier (efficiency),
LinearRegression (malfunction) or KMeans (clustering). Field names are Spark's param names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: the layout version; a file of another version is refused (retrain to rewrite it)
FORMAT = 1
FILE = "scoring.json"


class _Strict(BaseModel):
    """No unknown fields (a renamed field is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Versioned(_Strict):
    format: int = FORMAT

    @field_validator("format")
    @classmethod
    def _known(cls, value: int) -> int:
        if value != FORMAT:
            raise ValueError(f"must be {FORMAT} (got {value}); retrain to rewrite the set")
        return value


# ---------------------------------------------------------------- feature stages


class StringIndexer(_Strict):
    """Labels in Spark's fitted order; 'keep' maps an unseen or null label to ``len(labels)``."""

    type: Literal["StringIndexer"] = "StringIndexer"
    inputCols: list[str]
    outputCols: list[str]
    labels: list[list[str]]
    handleInvalid: Literal["keep", "error"]

    @model_validator(mode="after")
    def _one_per_column(self) -> StringIndexer:
        if not len(self.inputCols) == len(self.outputCols) == len(self.labels):
            raise ValueError("inputCols, outputCols and labels must have the same length")
        return self


class OneHotEncoder(_Strict):
    type: Literal["OneHotEncoder"] = "OneHotEncoder"
    inputCols: list[str]
    outputCols: list[str]
    categorySizes: list[Annotated[int, Field(ge=1)]]
    dropLast: bool
    handleInvalid: Literal["keep", "error"]

    @model_validator(mode="after")
    def _one_per_column(self) -> OneHotEncoder:
        if not len(self.inputCols) == len(self.outputCols) == len(self.categorySizes):
            raise ValueError("inputCols, outputCols and categorySizes must have the same length")
        return self


class VectorAssembler(_Strict):
    type: Literal["VectorAssembler"] = "VectorAssembler"
    inputCols: Annotated[list[str], Field(min_length=1)]
    outputCol: str
    handleInvalid: Literal["keep", "error"]


class StandardScaler(_Strict):
    type: Literal["StandardScaler"] = "StandardScaler"
    inputCol: str
    outputCol: str
    withMean: bool
    withStd: bool
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _same_width(self) -> StandardScaler:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have the same length")
        return self


# ---------------------------------------------------------------- estimators


class _Estimator(_Strict):
    featuresCol: str
    predictionCol: str
    probabilityCol: str  # '' when the estimator gives none
    numFeatures: Annotated[int, Field(ge=1)]


class Tree(_Strict):
    """One tree as parallel arrays by node id; a leaf has feature -1 and its class counts.

    A row goes left iff ``x[feature] <= threshold`` (NaN goes right). Training scales every
    feature, so Spark makes no categorical split: ``leftCategories`` is always empty.
    """

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    leftCategories: dict[str, list[float]]
    value: list[list[float]]  # a leaf's class counts; [] for an inner node

    @field_validator("leftCategories")
    @classmethod
    def _no_categories(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        if value:
            raise ValueError("categorical splits are not supported (scale the features)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Tree:
        n = len(self.feature)
        if n == 0 or any(len(a) != n for a in (self.threshold, self.left, self.right, self.value)):
            raise ValueError("feature, threshold, left, right and value: one entry per node")
        for node, feature in enumerate(self.feature):
            inner = feature >= 0
            if inner and not (0 < self.left[node] < n and 0 < self.right[node] < n):
                raise ValueError(f"node {node}: child ids must be within 1..{n - 1}")
            if not inner and not self.value[node]:
                raise ValueError(f"node {node}: a leaf must hold its class counts")
        return self


class RandomForestClassifier(_Estimator):
    """Probability: the per-tree normalised leaf counts, summed in tree order, normalised."""

    type: Literal["RandomForestClassifier"] = "RandomForestClassifier"
    trees: Annotated[list[Tree], Field(min_length=1)]
    treeWeights: list[float]
    numClasses: Annotated[int, Field(ge=2)]

    @model_validator(mode="after")
    def _consistent(self) -> RandomForestClassifier:
        if len(self.treeWeights) != len(self.trees):
            raise ValueError("treeWeights must have one weight per tree")
        for t, tree in enumerate(self.trees):
            if any(f >= self.numFeatures for f in tree.feature):
                raise ValueError(f"trees[{t}]: a split on a feature index >= numFeatures")
            if any(v and len(v) != self.numClasses for v in tree.value):
                raise ValueError(f"trees[{t}]: a leaf without numClasses class counts")
        return self


class LinearRegression(_Estimator):
    """``features @ coefficients + intercept`` (all-zero coefficients: predicts the mean)."""

    type: Literal["LinearRegression"] = "LinearRegression"
    coefficients: list[float]
    intercept: float

    @model_validator(mode="after")
    def _width(self) -> LinearRegression:
        if len(self.coefficients) != self.numFeatures:
            raise ValueError("coefficients must have numFeatures entries")
        return self


class KMeans(_Estimator):
    """The nearest center wins, ties to the lowest index."""

    type: Literal["KMeans"] = "KMeans"
    distanceMeasure: Literal["euclidean", "cosine"]
    centers: Annotated[list[list[float]], Field(min_length=1)]

    @model_validator(mode="after")
    def _width(self) -> KMeans:
        if any(len(c) != self.numFeatures for c in self.centers):
            raise ValueError("every center must have numFeatures entries")
        return self


FeatureStage = StringIndexer | OneHotEncoder | VectorAssembler | StandardScaler
Estimator = RandomForestClassifier | LinearRegression | KMeans
Stage = Annotated[FeatureStage | Estimator, Field(discriminator="type")]


class Pipeline(_Versioned):
    """One exported ``PipelineModel``: feature stages, then the estimator that gives the result."""

    stages: list[Stage]

    @model_validator(mode="after")
    def _estimator_last(self) -> Pipeline:
        kinds = [isinstance(s, Estimator) for s in self.stages]  # type: ignore[arg-type]
        if not kinds or not kinds[-1] or any(kinds[:-1]):
            raise ValueError("the last stage, and only the last, must be an estimator")
        return self

    @property
    def features(self) -> list[FeatureStage]:
        return list(self.stages[:-1])  # type: ignore[arg-type]

    @property
    def estimator(self) -> Estimator:
        return self.stages[-1]  # type: ignore[return-value]


class Header(_Versioned):
    """The version alone, checked first: an old file gets one error about it, not dozens."""

    model_config = ConfigDict(extra="ignore")


class ScoringFile(_Versioned):
    """The whole file: one pipeline per model of the set (``contracts.model_sets.MODEL_NAMES``)."""

    efficiency: Pipeline
    malfunction: Pipeline
    clustering: Pipeline

    @model_validator(mode="after")
    def _estimators(self) -> ScoringFile:
        for name, kind in (
            ("efficiency", RandomForestClassifier),
            ("malfunction", LinearRegression),
            ("clustering", KMeans),
        ):
            found = getattr(self, name).estimator
            if not isinstance(found, kind):
                raise ValueError(f"{name}: the estimator must be {kind.__name__}, not {found.type}")
        return self

    @classmethod
    def parse(cls, data: Any) -> ScoringFile:
        """The validated file; ``ScoringFileError`` names the first wrong field."""
        try:
            Header.model_validate(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ScoringFileError.of(exc) from None


class ScoringFileError(ValueError):
    """``scoring.json: <field>: <what is wrong>`` on one line."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{FILE}: {field}: {problem}" if field else f"{FILE}: {problem}")

    @classmethod
    def of(cls, exc: ValidationError) -> ScoringFileError:
        first = exc.errors(include_url=False)[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        problem = first["msg"].removeprefix("Value error, ")
        more = exc.error_count() - 1
        return cls(field.lstrip("."), problem + (f" (and {more} more)" if more else ""))
