"""Drift reports (DESIGN §17): each batch file against the champion's training rows.

One report per batch file, ``<model_dir>/drift/<batch file stem>.json`` (written when the batch
is first checked, against the champion of that moment), and one per set, ``<set>/drift.json``
(the set's batches that its champion had not trained on, as the gate saw them).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from smarthome.contracts.artefact import STRICT, Artefact, ContractError

FORMAT_VERSION = 1
DRIFT_DIR = "drift"
SET_DRIFT = "drift.json"


class _Strict(BaseModel):
    model_config = STRICT


class Thresholds(_Strict):
    """When a column drifts: its test's p-value below ``alpha`` AND its PSI at least ``psi``."""

    alpha: float = Field(gt=0, lt=1)
    psi: float = Field(gt=0)
    bins: int = Field(ge=2, description="PSI bins of a numeric column (reference quantiles)")


class ColumnDrift(_Strict):
    column: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"] = Field(description="Two-sample Kolmogorov-Smirnov or chi-squared")
    statistic: float
    p_value: float
    psi: float = Field(description="Population stability index, batch against reference")
    drifted: bool
    reference_mean: float | None = Field(description="Numeric columns: the reference's mean")
    batch_mean: float | None


class BatchDrift(Artefact):
    """One batch file against the champion's training rows."""

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    format: int = FORMAT_VERSION
    batch: str = Field(description="The batch file's name")
    reference_set: str = Field(description="The champion whose training rows are the reference")
    reference_rows: int = Field(ge=0)
    rows: int = Field(ge=0, description="Valid rows of the batch")
    checked_at: str
    thresholds: Thresholds
    columns: list[ColumnDrift]
    alarm: bool = Field(description="True when any column drifted")
    drifted_columns: list[str]


class SetDrift(Artefact):
    """A set's new batches (those its champion had not trained on) against that champion."""

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    format: int = FORMAT_VERSION
    set: str
    reference_set: str | None = Field(description="None: first set, nothing to compare with")
    checked_at: str
    batches: list[BatchDrift]
    alarm: bool
    drifted_columns: list[str]


def drift_dir(model_dir: Path | str) -> Path:
    return Path(model_dir) / DRIFT_DIR


def batch_report_path(model_dir: Path | str, batch_name: str) -> Path:
    return drift_dir(model_dir) / (Path(batch_name).stem + ".json")


def read_batch_reports(model_dir: Path | str) -> list[BatchDrift]:
    """Every readable batch report, in batch order (names sort in publish order)."""
    folder = drift_dir(model_dir)
    if not folder.is_dir():
        return []
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            reports.append(BatchDrift.read(path))
        except ContractError:  # skipped: the next check writes it again
            continue
    return reports
