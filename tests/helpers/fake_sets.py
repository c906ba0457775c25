"""A model set with simple deterministic rules in place of trained models, for the API and UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smarthome.contracts import model_sets as registry
from smarthome.contracts.manifest import Manifest
from tests.helpers.samples import sample_clusters


class FakeSet:
    """Duck-typed ServedSet: simple deterministic rules instead of trained models."""

    def __init__(self, path: Path):
        if (path / "broken").exists():
            raise ValueError((path / "broken").read_text())
        self.path = path
        self.name = path.name
        self.manifest = Manifest.read(path / registry.MANIFEST)
        self.clusters = sample_clusters()

    def predict_efficiency(self, rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
        return [(int(r["UsageHoursPerDay"] > 12), 0.75) for r in rows]

    def predict_malfunction(self, rows: list[dict[str, Any]]) -> list[float]:
        return [min(r["EnergyConsumption"], 1e6) * 2.0 for r in rows]

    def segment(self, rows: list[dict[str, Any]]) -> list[int]:
        return [0 if r["UsageHoursPerDay"] < 12 else 1 for r in rows]
