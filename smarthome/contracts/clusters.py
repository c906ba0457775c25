"""A model set's ``clusters.json`` (DESIGN §6): one profile per KMeans segment.

Written by ``smarthome.analysis.segments`` (at training time and by ``analyze_clusters.py``)
through :class:`Clusters`, read by the API and the UI through the same class. A segment's id
is ``id``, and the segments are listed in id order 0..k-1.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, Field, model_validator

from smarthome.contracts.artefact import STRICT, Artefact
from smarthome.contracts.records import DEVICE_TYPES, NUMERIC_FEATURES

FORMAT_VERSION = 1


def _exactly(keys: Collection[str]) -> AfterValidator:
    """A dict validator: its keys are exactly ``keys`` (a missing feature is no silent gap)."""

    def check(value: dict) -> dict:
        missing = [k for k in keys if k not in value]
        unknown = [k for k in value if k not in keys]
        if missing or unknown:
            raise ValueError(
                f"keys must be {', '.join(keys)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        return value

    return AfterValidator(check)


#: per numeric feature (``contracts.records.NUMERIC_FEATURES``)
FeatureValues = Annotated[dict[str, float], _exactly(NUMERIC_FEATURES)]
#: per numeric feature; None for a segment with no device
FeatureMeans = Annotated[dict[str, float | None], _exactly(NUMERIC_FEATURES)]
#: per device type (``contracts.records.DEVICE_TYPES``), 0..1
DeviceShares = Annotated[dict[str, float], _exactly(DEVICE_TYPES)]
#: the languages a segment is described in: English, Bahasa Indonesia (the UI's)
LANGUAGES: tuple[str, ...] = ("en", "id")


def _every_language_or_none(value: dict) -> dict:
    return _exactly(LANGUAGES).func(value) if value else value


#: per language (:data:`LANGUAGES`); empty in a profile that holds only ``description``
Texts = Annotated[dict[str, str], AfterValidator(_every_language_or_none)]


class Overall(BaseModel):
    """Every profiled row together: the reference a segment is described against."""

    model_config = STRICT
    rows: int = Field(ge=0)
    means: FeatureValues
    stds: FeatureValues
    device_type_shares: DeviceShares
    efficiency_rate: float


class Segment(BaseModel):
    model_config = STRICT
    id: int = Field(ge=0, description="The KMeans cluster id the API answers")
    size: int = Field(ge=0, description="Rows of the profiled data in the segment")
    share: float
    means: FeatureMeans
    overall_means: FeatureValues
    device_type_shares: DeviceShares
    efficiency_rate: float
    description: str = Field(description="Generated one-sentence profile, in English")
    name: Texts = Field(
        default_factory=dict,
        description="A few generated words on what sets the segment apart, per language",
    )
    descriptions: Texts = Field(
        default_factory=dict, description="``description`` in every language, per language"
    )

    def describe(self, lang: str = "en") -> str:
        """The generated description in ``lang`` (English when the profile has no other)."""
        return self.descriptions.get(lang) or self.description

    def named(self, lang: str = "en") -> str:
        """The segment's generated name in ``lang`` (English, else empty, when missing)."""
        return self.name.get(lang) or self.name.get("en", "")


class Clusters(Artefact):
    """``clusters.json`` of one model set."""

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    format: int = FORMAT_VERSION
    k: int = Field(ge=1)
    overall: Overall
    clusters: list[Segment]

    @model_validator(mode="after")
    def _ids_in_order(self) -> Clusters:
        ids = [c.id for c in self.clusters]
        if ids != list(range(self.k)):
            raise ValueError(f"clusters: ids must be 0..{self.k - 1} in order (got {ids})")
        return self

    def descriptions(self) -> dict[int, str]:
        """Segment id -> its generated description."""
        return {c.id: c.description for c in self.clusters}

    def by_id(self) -> dict[int, Segment]:
        """Segment id -> its profile."""
        return {c.id: c for c in self.clusters}

    def efficiency_spread(self) -> float:
        """The efficient share of the most efficient segment minus the least's, 0..1, over
        the segments holding a device (0 with fewer than two)."""
        rates = [c.efficiency_rate for c in self.clusters if c.size]
        return round(max(rates) - min(rates), 6) if len(rates) > 1 else 0.0
