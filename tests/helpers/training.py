"""What the training tests share: a quick config, spark-submit, a complete set's files."""

from __future__ import annotations

from pathlib import Path

from smarthome.contracts import model_sets as registry
from smarthome.devtools.workspace import CHECKOUT

SPARK_SUBMIT = CHECKOUT / ".venv" / "bin" / "spark-submit"


def quick_config():
    from smarthome.training.config import TrainConfig

    return TrainConfig(quick=True)


def assert_complete(folder: Path) -> None:
    for name in (*registry.MODEL_NAMES, registry.MANIFEST, registry.SCORING, registry.CLUSTERS):
        assert (folder / name).exists(), f"{folder.name} lacks {name}"
    for model in registry.MODEL_NAMES:
        assert (folder / model / "metadata").is_dir()
        assert (folder / model / "stages").is_dir()
