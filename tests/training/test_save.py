"""A pipeline saved with its stages side by side is the folder ``PipelineModel.save`` writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smarthome.training import features

pytestmark = pytest.mark.spark


def _files(folder: Path) -> list[str]:
    """Every file below ``folder``, a Spark part file by its prefix (its name holds a uuid)."""
    names = []
    for path in folder.rglob("*"):
        if path.is_file():
            relative = path.relative_to(folder).as_posix()
            names.append(relative.split("part-")[0] + "part" if "part-" in relative else relative)
    return sorted(names)


def _metadata(file: Path) -> dict:
    data = json.loads(file.read_text())
    del data["timestamp"]  # when it was written
    return data


def _rows(spark, folder: Path) -> list[str]:
    """A saved Parquet folder's rows as text, without the write time in tree metadata."""
    rows = [str(row) for row in spark.read.parquet(str(folder)).collect()]
    return sorted(re.sub(r'\\?"timestamp\\?":\d+', "", row) for row in rows)


def test_parallel_save_writes_what_spark_writes_and_loads_back(spark, tmp_path: Path) -> None:
    from pyspark.ml import PipelineModel

    from smarthome.training.save import save_pipeline

    rows = [
        ("Camera", 1.0 + i % 7, 2.0 * (i % 5), i % 2, i % 4, 10 + i % 30, i % 2) for i in range(60)
    ]
    frame = features.model_input(
        spark.createDataFrame(
            rows,
            "DeviceType string, UsageHoursPerDay double, EnergyConsumption double, "
            "UserPreferences int, MalfunctionIncidents int, DeviceAgeMonths int, "
            "SmartHomeEfficiency int",
        )
    )
    model = features.efficiency_pipeline(7, numTrees=3, maxDepth=3).fit(frame)

    model.save(str(tmp_path / "spark"))
    save_pipeline(model, tmp_path / "parallel")

    spark_files, ours = _files(tmp_path / "spark"), _files(tmp_path / "parallel")
    assert ours == spark_files
    assert any(name.startswith("stages/4_RandomForestClassifier") for name in ours)
    for metadata in (tmp_path / "spark").rglob("metadata/part-*"):
        folder = metadata.parent.relative_to(tmp_path / "spark")
        (twin,) = (tmp_path / "parallel" / folder).glob("part-*")
        assert _metadata(twin) == _metadata(metadata), folder
    for data in [*(tmp_path / "spark").rglob("data"), *(tmp_path / "spark").rglob("treesMetadata")]:
        folder = data.relative_to(tmp_path / "spark")
        assert _rows(spark, data) == _rows(spark, tmp_path / "parallel" / folder), folder

    loaded = PipelineModel.load(str(tmp_path / "parallel"))
    expected = model.transform(frame).select("probability", "prediction").collect()
    assert loaded.transform(frame).select("probability", "prediction").collect() == expected
