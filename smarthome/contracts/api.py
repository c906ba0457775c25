"""The API's response bodies (DESIGN §8): the server fills them, the UI reads them back.

Field names are the original project's, so its curl calls and UI keep working, plus
``model_set`` (which set answered) and the segment description / malfunction-quality note.
The OpenAPI document is generated from these classes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from smarthome.contracts.artefact import STRICT, ContractError, describe
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.drift import BatchDrift
from smarthome.contracts.manifest import (
    ClassificationBaseline,
    ClassificationMetrics,
    ClusteringMetrics,
    Manifest,
    NoBaseline,
    RegressionBaseline,
    RegressionMetrics,
)
from smarthome.contracts.promotion import ChampionPointer, Promotion

Body = TypeVar("Body", bound=BaseModel)


class _Response(BaseModel):
    model_config = STRICT


class EfficiencyResult(_Response):
    predicted_efficiency_class: int = Field(ge=0, le=1, description="1 = efficient")
    label: str = Field(description="'Efficient' or 'Not efficient'")
    probability_of_predicted_class: float = Field(ge=0, le=1)
    model_set: str = Field(description="Name of the model set that answered")


class MalfunctionResult(_Response):
    predicted_malfunctions: float = Field(description="Predicted malfunction incidents")
    model_set: str
    note: str | None = Field(
        default=None,
        description="Present when the regressor is no better than predicting the mean",
    )


class SegmentResult(_Response):
    device_segment_id: int = Field(ge=0, description="KMeans cluster id")
    description: str = Field(description="Generated one-sentence profile of the segment")
    model_set: str
    description_id: str = Field(
        default="", description="The same profile in Bahasa Indonesia (English if none)"
    )
    segment_name: str = Field(
        default="", description="A few words on what sets the segment apart (English)"
    )
    segment_name_id: str = Field(default="", description="The same in Bahasa Indonesia")
    efficient_share: float | None = Field(
        default=None, ge=0, le=1, description="Share of efficient devices in the segment"
    )


class ErrorResponse(_Response):
    error: str = Field(description="What went wrong, in a few words")
    details: list[str] = Field(description="One message per problem, naming the field")


class EfficiencyScores(_Response):
    metrics: ClassificationMetrics
    baseline: ClassificationBaseline
    beats_baseline: bool


class MalfunctionScores(_Response):
    metrics: RegressionMetrics
    baseline: RegressionBaseline
    beats_baseline: bool
    beats_baseline_rule: str


class ClusteringScores(_Response):
    metrics: ClusteringMetrics
    baseline: NoBaseline


class SetScores(_Response):
    """Each model's held-out metrics and baseline, as its manifest section states them."""

    efficiency: EfficiencyScores
    malfunction: MalfunctionScores
    clustering: ClusteringScores

    @classmethod
    def of(cls, manifest: Manifest) -> SetScores:
        models = manifest.models
        pick: dict[str, tuple[BaseModel, type[BaseModel]]] = {
            "efficiency": (models.efficiency, EfficiencyScores),
            "malfunction": (models.malfunction, MalfunctionScores),
            "clustering": (models.clustering, ClusteringScores),
        }
        return cls(
            **{
                name: kind.model_validate(
                    {field: getattr(section, field) for field in kind.model_fields}
                )
                for name, (section, kind) in pick.items()
            }
        )


class NoScores(_Response):
    """``{}``: no set is loaded."""


class StatusResponse(_Response):
    status: str = Field(description="'ok', or 'no model set' (predictions answer 503)")
    model_set: str | None = Field(description="The loaded set's name")
    loaded_model_set: int | None = Field(
        description="The loaded set's number, as the original API answered"
    )
    model_dir: str
    metrics: SetScores | NoScores = Field(
        description="Held-out metrics of each model of the set ({} when none is loaded)"
    )
    manifest: Manifest | None = Field(description="The loaded set's manifest.json")
    skipped_sets: dict[str, str] = Field(description="Sets that failed to load: name -> reason")
    hint: str | None = None
    worker_pid: int = Field(
        description="The server process that answered: each worker loads and reloads on its own"
    )
    champion: ChampionPointer | None = Field(
        default=None,
        description="champion.json: the set to serve, who chose it, the past champions "
        "(null: no pointer, the newest set is served)",
    )
    promotion: Promotion | None = Field(
        default=None, description="The loaded set's promotion gate decision, with its reasons"
    )


class SetEntry(_Response):
    name: str
    loaded: bool = Field(description="True for the set answering predictions")
    manifest: Manifest | None = Field(description="manifest.json, null if unreadable")
    error: str | None = Field(description="Why the set is not usable, if it is not")
    champion: bool = Field(default=False, description="True for the set champion.json names")
    promotion: Promotion | None = Field(
        default=None,
        description="Why the set was or was not promoted (null: no decision, e.g. a set "
        "trained before the gate)",
    )


class ModelsResponse(_Response):
    model_dir: str
    sets: list[SetEntry] = Field(description="Every published set, newest first")
    champion: str | None = Field(
        default=None, description="The champion's name (null: no pointer, newest is served)"
    )


class DriftResponse(_Response):
    model_dir: str
    champion: str | None = Field(description="The set new batches are compared with now")
    batches: list[BatchDrift] = Field(
        description="Every checked batch file, oldest first, against the champion of its time"
    )


class SegmentsResponse(_Response):
    model_set: str
    clusters: Clusters = Field(description="The loaded set's clusters.json")


class Health(_Response):
    status: str = Field(description="Always 'ok' while the server answers")


def dump(body: BaseModel) -> dict[str, Any]:
    """A response model as the JSON object the API sends."""
    return body.model_dump(mode="json")


def read_response(model: type[Body], body: Any, source: str) -> Body:
    """An API answer read through its type, or ContractError naming ``source`` and the field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ContractError(describe(source, exc)) from None
