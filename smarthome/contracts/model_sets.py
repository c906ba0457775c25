"""Model sets on disk: ``<model_dir>/<UTC yyyymmddTHHMMSS>Z_set<NNNN>/`` (DESIGN §6).

A set is written under ``<model_dir>/.tmp/`` and renamed into place when complete, so every
folder that matches the name pattern is whole. The newest set is the greatest name.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

SET_NAME = re.compile(r"^(\d{8}T\d{6})Z_set(\d{4,})$")
MANIFEST = "manifest.json"
SCORING = "scoring.json"
CLUSTERS = "clusters.json"
TRAINING_LOCK = ".training.lock"  # held by the one spark_training.py that writes the folder
MODEL_NAMES = ("efficiency", "malfunction", "clustering")


def set_name(number: int, when: datetime | None = None) -> str:
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{when:%Y%m%dT%H%M%S}Z_set{number:04d}"


def set_number(path: Path | str) -> int:
    match = SET_NAME.match(Path(path).name)
    if not match:
        raise ValueError(f"not a model set folder name: {Path(path).name}")
    return int(match.group(2))


def list_sets(model_dir: Path | str) -> list[Path]:
    """Every published set, oldest first (hidden and temporary folders are never listed)."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and SET_NAME.match(p.name))


def newest_set(model_dir: Path | str) -> Path | None:
    sets = list_sets(model_dir)
    return sets[-1] if sets else None


def tmp_dir(model_dir: Path | str) -> Path:
    """Where a set is built before it is renamed into place (same filesystem)."""
    return Path(model_dir) / ".tmp"
