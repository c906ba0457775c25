"""A model set's ``manifest.json`` (DESIGN §6): what the set was trained on, how, how well.

Training writes it through :class:`Manifest`; the API, the UI, the metrics and the tools read
it through the same class, by its real field names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator, model_validator

from smarthome.contracts.artefact import STRICT, Artefact

FORMAT_VERSION = 1

#: a Spark param value as the manifest records it (anything else is recorded as its str)
ParamValue = int | float | str | bool | None


class _Strict(BaseModel):
    model_config = STRICT


class ClassificationMetrics(_Strict):
    accuracy: float
    f1: float = Field(description="Weighted F1, as Spark's 'f1'")
    f1_efficient: float = Field(description="F1 of class 1 (efficient)")
    roc_auc: float


class RegressionMetrics(_Strict):
    rmse: float
    mae: float
    r2: float


class ClusteringMetrics(_Strict):
    silhouette: float
    efficient_share_spread: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Efficient share of the most efficient segment minus the least efficient's "
        "(0..1): how much the segments tell apart efficient use; None when not recorded",
    )


class ClassificationBaseline(_Strict):
    """The majority class of the training split, measured on the same held-out split."""

    kind: str
    accuracy: float
    f1: float
    f1_efficient: float
    roc_auc: float


class RegressionBaseline(_Strict):
    """Predicting the training mean, measured on the same held-out split."""

    kind: str
    mean: float
    rmse: float
    mae: float
    r2: float


class NoBaseline(_Strict):
    kind: str


class EfficiencySection(_Strict):
    algorithm: str
    label: str
    params: dict[str, ParamValue]
    fit_on: str
    training_seconds: float
    metrics: ClassificationMetrics
    baseline: ClassificationBaseline
    beats_baseline: bool
    feature_importances: list[float]


class TriedModel(_Strict):
    algorithm: str
    params: dict[str, ParamValue]
    metrics: RegressionMetrics


class MalfunctionSection(_Strict):
    algorithm: str
    label: str
    params: dict[str, ParamValue]
    fit_on: str
    training_seconds: float
    metrics: RegressionMetrics
    baseline: RegressionBaseline
    beats_baseline: bool
    beats_baseline_rule: str
    note: str = Field(description="An honest sentence on how the regressor compares")
    tried: list[TriedModel]


class KCandidate(_Strict):
    k: int = Field(ge=1)
    silhouette: float


class KSelection(_Strict):
    """How the number of segments was chosen: the rule and every k fitted."""

    rule: str
    tried: list[KCandidate]


class ClusteringSection(_Strict):
    algorithm: str
    params: dict[str, ParamValue]
    fit_on: str
    training_seconds: float
    metrics: ClusteringMetrics
    baseline: NoBaseline
    k: int = Field(ge=1)
    cluster_sizes: list[int]
    #: the columns the segments are computed on; None when not recorded
    features: list[str] | None = None
    #: None when not recorded
    k_selection: KSelection | None = None


class Models(_Strict):
    efficiency: EfficiencySection
    malfunction: MalfunctionSection
    clustering: ClusteringSection


class Split(_Strict):
    method: str
    seed: int
    test_percent: int
    train_rows: int
    test_rows: int


class TrainSettings(_Strict):
    """``TrainConfig`` as recorded (kept apart: the contract must not import pyspark)."""

    #: the number of segments asked for; None: chosen by silhouette (``models.clustering``)
    k: int | None
    seed: int
    test_percent: int
    quick: bool
    #: None: the rows in the partitions Spark's reader made (every set before the option)
    rows_per_partition: int | None = None

    #: settings that older sets recorded and training no longer has: read and dropped, so
    #: every set on disk still loads (any other unknown key is still an error)
    RETIRED: ClassVar[frozenset[str]] = frozenset({"legacy_speed"})

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in cls.RETIRED}
        return data


class Versions(_Strict):
    spark: str
    pyspark: str
    python: str
    java: str
    numpy: str
    pandas: str
    smarthome: str


class Manifest(Artefact):
    """``manifest.json`` of one model set."""

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    format: int = FORMAT_VERSION
    set: int = Field(ge=1, description="Set number N: trained on the first N batch files")
    name: str = Field(description="The set's folder name")
    created_at: str = Field(description="UTC time the set was trained, ISO 8601")
    batch_files: list[str]
    rows: int = Field(ge=0)
    rows_skipped: int = Field(ge=0)
    rows_skipped_by_file: dict[str, int]
    split: Split
    config: TrainSettings
    versions: Versions
    seconds: float
    models: Models

    @field_validator("created_at")
    @classmethod
    def _iso(cls, value: str) -> str:
        if datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None:
            raise ValueError("must be an ISO 8601 time with a UTC offset")
        return value

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware datetime."""
        return datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))
