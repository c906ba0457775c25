"""A set as the API and the stream scorer serve it: the numpy scorer, manifest, segments.

The manifest and ``clusters.json`` are read through their contracts when the set is loaded,
so a set whose files do not match them is skipped with the reason (``GET /`` and
``GET /models`` show it) instead of answering with gaps.
"""

from __future__ import annotations

from pathlib import Path

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.manifest import Manifest
from smarthome.scoring.model_set import ModelSet


class ServedSet:
    """What a request needs of the loaded set; the scorer's methods are bound, not wrapped."""

    def __init__(self, scorer: object, manifest: Manifest, clusters: Clusters, name: str):
        self.scorer = scorer
        self.name = name
        self.manifest = manifest
        self.clusters = clusters
        self.predict_efficiency = scorer.predict_efficiency  # type: ignore[attr-defined]
        self.predict_malfunction = scorer.predict_malfunction  # type: ignore[attr-defined]
        self.segment = scorer.segment  # type: ignore[attr-defined]

    @classmethod
    def load(cls, set_dir: Path) -> ServedSet:
        """The set in ``set_dir``; ContractError / ModelSetError say what is wrong with it."""
        set_dir = Path(set_dir)
        manifest = Manifest.read(set_dir / registry.MANIFEST)
        clusters = Clusters.read(set_dir / registry.CLUSTERS)
        if clusters.k != manifest.models.clustering.k:
            raise ContractError(
                f"{set_dir / registry.CLUSTERS}: field k: is {clusters.k}, the manifest's "
                f"models.clustering.k is {manifest.models.clustering.k}"
            )
        return cls(ModelSet.load(set_dir), manifest, clusters, set_dir.name)
