"""A pipeline saved without Spark jobs (``training.model_files``) is Spark's writer's, file
for file: the same folders, the same metadata JSON, the same Parquet schema and rows, and
``PipelineModel.load`` reads it back to the same predictions."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from smarthome.training import model_files
from smarthome.training.model_files import UnreadableModelFile, _Reader


def _without_timestamps(text: str) -> dict[str, Any]:
    metadata = json.loads(text)
    metadata.pop("timestamp")
    return metadata


def _footer(part: Path) -> tuple[str, str]:
    """(the Spark schema in a Parquet file's footer, its Parquet schema but the root's name)."""
    import pyarrow.parquet as pq

    footer = pq.read_metadata(part)
    spark_schema = json.loads(footer.metadata[model_files.SPARK_SCHEMA_KEY.encode()])
    parquet_schema = str(footer.schema).split("\n", 2)[2]  # after the object and root lines
    return json.dumps(spark_schema, sort_keys=True), parquet_schema


def _contents(spark, root: Path) -> dict[str, Any]:
    """Every folder of a saved model: its files' kinds, and what Spark reads from them."""
    out: dict[str, Any] = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        parts = [n for n in names if n.startswith("part-")]
        kinds = sorted({n.split(".", 1)[-1] if "." in n else n for n in names if n in parts})
        key = str(folder.relative_to(root))
        if folder.name == "metadata":
            (part,) = parts
            out[key] = (names.count("_SUCCESS"), _without_timestamps((folder / part).read_text()))
        elif parts:
            # Spark reads every column as nullable: the nullability is in the footers
            footers = {_footer(folder / part) for part in parts}
            frame = spark.read.parquet(str(folder))
            rows = [r.asDict(recursive=True) for r in frame.collect()]
            if folder.name == "treesMetadata":  # each tree's metadata JSON has a timestamp
                rows = [{**r, "_2": _without_timestamps(r["_2"])} for r in rows]
            rows.sort(key=repr)
            out[key] = (names.count("_SUCCESS"), kinds, footers, frame.schema.json(), rows)
        else:
            out[key] = names
    return out


@pytest.fixture(scope="module")
def fitted(spark, dataset_batch_dir: Path) -> dict[str, Any]:
    from smarthome.contracts.batch_files import list_batch_files
    from smarthome.training import features
    from smarthome.training.batches import read_batches
    from smarthome.training.models import TrainConfig

    rows = features.model_input(read_batches(spark, list_batch_files(dataset_batch_dir)).df)
    cfg = TrainConfig(quick=True)
    odd_labels = ["Smart Speaker", "Café ☕ 🏠", "nul\x00inside", "ünïcödé"]
    return {
        "rows": rows,
        "efficiency": features.efficiency_pipeline(cfg.seed, **cfg.efficiency_params).fit(rows),
        "malfunction": features.malfunction_pipeline().fit(rows),
        "clustering": features.clustering_pipeline(cfg.k, cfg.seed, **cfg.kmeans_params).fit(rows),
        "odd labels": features.malfunction_pipeline(device_types=odd_labels).fit(rows),
    }


@pytest.mark.spark
@pytest.mark.parametrize("name", ["efficiency", "malfunction", "clustering", "odd labels"])
def test_saved_without_jobs_is_what_sparks_writer_saves(
    spark, fitted: dict[str, Any], tmp_path: Path, name: str
) -> None:
    from pyspark.ml import PipelineModel

    assert model_files.can_save_without_jobs(spark.version), spark.version
    model = fitted[name]
    model.save(str(tmp_path / "spark"))
    jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    model_files.save_pipeline(model, tmp_path / "fast", spark.version)
    jobs_after = len(spark.sparkContext.statusTracker().getJobIdsForGroup())

    assert jobs_after == jobs_before, "saving ran Spark jobs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast", "spark"], "scratch left over"
    expected = _contents(spark, tmp_path / "spark")
    assert _contents(spark, tmp_path / "fast") == expected
    assert len([k for k in expected if k.endswith("metadata")]) == 1 + len(model.stages)

    expected_rows = model.transform(fitted["rows"])
    columns = [c for c in ("prediction", "probability") if c in expected_rows.columns]
    loaded = PipelineModel.load(str(tmp_path / "fast"))
    assert loaded.transform(fitted["rows"]).select(columns).collect() == (
        expected_rows.select(columns).collect()
    )


def _utf(text_bytes: bytes) -> bytes:
    return struct.pack(">H", len(text_bytes)) + text_bytes


@pytest.mark.spark
def test_the_fitted_forest_wraps_its_trees_only_when_asked(fitted: dict[str, Any]) -> None:
    """pyspark 4's forest model wraps every tree through py4j as soon as it exists (its
    ``trees`` is a cached_property that ``Params.params`` evaluates): ~0.9 s of each set's
    critical path at 100 trees. The training's forest model wraps them when asked, the same."""
    from pyspark.ml.classification import RandomForestClassificationModel

    forest = fitted["efficiency"].stages[-1]
    assert forest.params  # what creating, copying and transforming a model evaluate
    assert "trees" not in vars(forest)
    stock = RandomForestClassificationModel(forest._java_obj)
    # pyspark's own class still wraps them on creation (when it no longer does, drop ours)
    assert "trees" in vars(stock)
    assert [t.toDebugString for t in forest.trees] == [t.toDebugString for t in stock.trees]


def test_reads_javas_modified_utf8() -> None:
    # DataOutputStream.writeUTF: NUL as C0 80, U+1F3E0 as two 3-byte surrogates
    raw = _utf(b"a\xc0\x80b") + _utf("é".encode()) + _utf(b"\xed\xa0\xbc\xed\xbf\xa0")
    reader = _Reader(raw)
    assert [reader.utf(), reader.utf(), reader.utf()] == ["a\x00b", "é", "\U0001f3e0"]


def test_a_file_longer_or_shorter_than_its_format_is_refused(tmp_path: Path) -> None:
    schema, read_rows = model_files.DATA_FILES[
        ("org.apache.spark.ml.feature.OneHotEncoderModel", "data")
    ]
    exact = struct.pack(">ii", 1, 5)
    (tmp_path / "exact").write_bytes(exact)
    assert model_files._read_all(tmp_path / "exact", read_rows) == [{"categorySizes": [5]}]
    (tmp_path / "long").write_bytes(exact + b"\x00")
    with pytest.raises(UnreadableModelFile, match="1 bytes left unread"):
        model_files._read_all(tmp_path / "long", read_rows)
    (tmp_path / "short").write_bytes(exact[:-1])
    with pytest.raises(UnreadableModelFile, match="shorter than its format"):
        model_files._read_all(tmp_path / "short", read_rows)


def test_a_model_class_without_a_converter_is_refused(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "metadata").write_text(json.dumps({"class": "org.example.SomeModel"}))
    (local / "data").write_bytes(b"")
    with pytest.raises(UnreadableModelFile, match="no converter for org.example.SomeModel"):
        model_files._convert_tree(local, tmp_path / "out", "4.1.1")


def test_only_the_checked_spark_versions_skip_sparks_writer() -> None:
    assert model_files.can_save_without_jobs("4.1.1")
    assert not model_files.can_save_without_jobs("4.0.1")
    assert not model_files.can_save_without_jobs("3.5.6")
