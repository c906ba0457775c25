"""Save a fitted ``PipelineModel`` in MLlib's own folder layout without a Spark job per file.

Spark's writers run a job for every metadata file and every Parquet file: 31 jobs for a set's
three pipelines, each ~100-300 ms of driver, scheduler and JIT work on this project's small
models, and they were the tail of every set (the forest's save ran after its fit). Spark 4.1
can also save a model with no job at all, from the driver (``MLWriter.saveToLocal``, which
Spark Connect uses), but in a binary format of its own that ``PipelineModel.load`` cannot
read. So the model is saved that way into a scratch folder, and every file is rewritten as
Spark's writer writes it: a metadata folder holding the same JSON as one text part, and each
data file as one Parquet part with the same columns and, in its footer, the Spark schema
Spark's writer puts there (so vectors read back as vectors). ``PipelineModel.load`` reads the
result as it reads Spark's own; ``tests/training/test_model_files.py`` compares every file
with what Spark's writer produces.

The binary format is Spark's, not a public API: the fast way is taken only on the Spark
versions in ``CHECKED_SPARK_VERSIONS`` (a spark-submit of another Spark falls back to
Spark's writer), and a file it cannot read to its last byte is an error, never a guess.
"""

from __future__ import annotations

import functools
import json
import shutil
import struct
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: the Spark versions whose local format this module reads (checked by its test)
CHECKED_SPARK_VERSIONS = ("4.1.1",)
#: the footer key under which Spark's Parquet writer keeps the Spark schema of the file
SPARK_SCHEMA_KEY = "org.apache.spark.sql.parquet.row.metadata"
SPARK_VERSION_KEY = "org.apache.spark.version"


class UnreadableModelFile(ValueError):
    """A file of Spark's local format that this module cannot convert exactly."""


def can_save_without_jobs(spark_version: str) -> bool:
    return spark_version in CHECKED_SPARK_VERSIONS


def save_pipeline(model: Any, path: Path, spark_version: str) -> None:
    """Save ``model`` (a fitted pyspark ``PipelineModel``) in ``path``, which must not exist,
    as ``model.save(path)`` would, with no Spark job."""
    scratch = path.parent / f".{path.name}.local"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        model.write()._jwrite.saveToLocal(str(scratch))
        _convert_tree(scratch, path, spark_version)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _convert_tree(local: Path, out: Path, spark_version: str) -> None:
    """Every model folder under ``local`` (the one with a ``metadata`` file), converted."""
    for metadata in sorted(local.rglob("metadata")):
        if not metadata.is_file():
            continue
        folder = metadata.parent
        target = out / folder.relative_to(local)
        text = metadata.read_text(encoding="utf-8")
        cls = json.loads(text)["class"]
        _write_text_part(target / "metadata", text)
        for data in sorted(p for p in folder.iterdir() if p.is_file() and p.name != "metadata"):
            converter = DATA_FILES.get((cls, data.name))
            if converter is None:
                raise UnreadableModelFile(f"{data}: no converter for {cls}'s {data.name!r}")
            schema, read_rows = converter
            rows = _read_all(data, read_rows)
            _write_parquet_part(target / data.name, schema, rows, spark_version)


def _write_text_part(folder: Path, text: str) -> None:
    """One line of text as Spark's text writer leaves it: a part file and ``_SUCCESS``."""
    folder.mkdir(parents=True)
    (folder / f"part-00000-{uuid.uuid4()}-c000.txt").write_text(text + "\n", encoding="utf-8")
    (folder / "_SUCCESS").touch()


def _write_parquet_part(
    folder: Path, spark_schema: dict[str, Any], rows: list[dict[str, Any]], spark_version: str
) -> None:
    """Rows as Spark's Parquet writer leaves them: one snappy part, ``_SUCCESS``."""
    folder.mkdir(parents=True)
    schema = pa.schema(
        [_arrow_field(f) for f in spark_schema["fields"]],
        metadata={
            SPARK_SCHEMA_KEY: json.dumps(spark_schema, separators=(",", ":")),
            SPARK_VERSION_KEY: spark_version,
        },
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, folder / f"part-00000-{uuid.uuid4()}-c000.snappy.parquet")
    (folder / "_SUCCESS").touch()


# --- Spark SQL types, as the JSON of a schema, and their Arrow equivalents --------------------

_ARROW_ATOMS = {
    "byte": pa.int8(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "string": pa.string(),
}


def _field(name: str, type_: Any, nullable: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "nullable": nullable, "metadata": {}}


def _array(element: Any, contains_null: bool = False) -> dict[str, Any]:
    return {"type": "array", "elementType": element, "containsNull": contains_null}


def _struct(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "struct", "fields": list(fields)}


def _arrow_type(spark_type: Any) -> pa.DataType:
    if isinstance(spark_type, str):
        return _ARROW_ATOMS[spark_type]
    kind = spark_type["type"]
    if kind == "array":
        element = _arrow_type(spark_type["elementType"])
        return pa.list_(pa.field("element", element, nullable=spark_type["containsNull"]))
    if kind == "struct":
        return pa.struct([_arrow_field(f) for f in spark_type["fields"]])
    if kind == "udt":
        return _arrow_type(spark_type["sqlType"])
    raise UnreadableModelFile(f"no Arrow type for Spark type {kind!r}")


def _arrow_field(field: dict[str, Any]) -> pa.Field:
    return pa.field(field["name"], _arrow_type(field["type"]), nullable=field["nullable"])


#: pyspark.ml.linalg.VectorUDT, stored as its struct: type 0 sparse (size, indices), 1 dense
VECTOR = {
    "type": "udt",
    "class": "org.apache.spark.ml.linalg.VectorUDT",
    "pyClass": "pyspark.ml.linalg.VectorUDT",
    "sqlType": _struct(
        _field("type", "byte", nullable=False),
        _field("size", "integer"),
        _field("indices", _array("integer")),
        _field("values", _array("double")),
    ),
}


# --- Spark's local binary format: java.io.DataOutputStream, big-endian -------------------------


class _Reader:
    """Reads what ``ReadWriteUtils.serialize*`` wrote, in the same order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def _take(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def unpack(self, fixed: struct.Struct) -> tuple[Any, ...]:
        values = fixed.unpack_from(self.data, self.at)
        self.at += fixed.size
        return values

    def int(self) -> int:
        return self._take(">i")[0]

    def long(self) -> int:
        return self._take(">q")[0]

    def double(self) -> float:
        return self._take(">d")[0]

    def boolean(self) -> bool:
        return self._take(">?")[0]

    def utf(self) -> str:
        """``writeUTF``'s modified UTF-8: NUL as C0 80, supplementary characters as two
        3-byte surrogates."""
        (size,) = self._take(">H")
        raw = self.data[self.at : self.at + size].replace(b"\xc0\x80", b"\x00")
        self.at += size
        text = raw.decode("utf-8", "surrogatepass")
        return text.encode("utf-16", "surrogatepass").decode("utf-16")

    def ints(self) -> list[int]:
        n = self.int()
        return list(self._take(f">{n}i"))

    def doubles(self) -> list[float]:
        n = self.int()
        return list(self._take(f">{n}d"))

    def array(self, item: Callable[[_Reader], Any]) -> list[Any]:
        return [item(self) for _ in range(self.int())]

    def vector(self) -> dict[str, Any]:
        if self.boolean():  # sparse
            size = self.int()
            return {"type": 0, "size": size, "indices": self.ints(), "values": self.doubles()}
        return {"type": 1, "size": None, "indices": None, "values": self.doubles()}


def _read_all(path: Path, read_rows: Callable[[_Reader], list[dict[str, Any]]]) -> list[Any]:
    reader = _Reader(path.read_bytes())
    try:
        rows = read_rows(reader)
    except struct.error as exc:
        raise UnreadableModelFile(f"{path}: shorter than its format ({exc})") from None
    if reader.at != len(reader.data):
        raise UnreadableModelFile(f"{path}: {len(reader.data) - reader.at} bytes left unread")
    return rows


#: a forest's node row in the local format (treeModels.scala ``NodeData.serializeData``, after
#: its tree's id), read in fixed runs around its two double arrays (``impurityStats`` and the
#: split's ``leftCategoriesOrThreshold``): 100 trees are ~12,000 rows, and read field by field
#: they were the longest part of the forest's save
_NODE_HEAD = struct.Struct(">iiddi")  # treeID, id, prediction, impurity, len(impurityStats)
_NODE_MIDDLE = struct.Struct(">qdiiii")  # rawCount, gain, left, right, featureIndex, len(...)


@functools.cache
def _doubles_struct(count: int) -> struct.Struct:
    return struct.Struct(f">{count}d")


def _forest_rows(r: _Reader) -> list[dict[str, Any]]:
    """The rows of a forest's ``data``: every tree's nodes, as ``(treeID, nodeData)``."""
    rows = []
    for _ in range(r.int()):
        tree, node, prediction, impurity, n_stats = r.unpack(_NODE_HEAD)
        stats = r.unpack(_doubles_struct(n_stats))
        raw_count, gain, left, right, feature, n_split = r.unpack(_NODE_MIDDLE)
        split = r.unpack(_doubles_struct(n_split))
        categories = r.int()  # the split's numCategories
        rows.append(
            {
                "treeID": tree,
                "nodeData": {
                    "id": node,
                    "prediction": prediction,
                    "impurity": impurity,
                    "impurityStats": list(stats),
                    "rawCount": raw_count,
                    "gain": gain,
                    "leftChild": left,
                    "rightChild": right,
                    "split": {
                        "featureIndex": feature,
                        "leftCategoriesOrThreshold": list(split),
                        "numCategories": categories,
                    },
                },
            }
        )
    return rows


_NODE = _struct(
    _field("id", "integer", nullable=False),
    _field("prediction", "double", nullable=False),
    _field("impurity", "double", nullable=False),
    _field("impurityStats", _array("double")),
    _field("rawCount", "long", nullable=False),
    _field("gain", "double", nullable=False),
    _field("leftChild", "integer", nullable=False),
    _field("rightChild", "integer", nullable=False),
    _field(
        "split",
        _struct(
            _field("featureIndex", "integer", nullable=False),
            _field("leftCategoriesOrThreshold", _array("double")),
            _field("numCategories", "integer", nullable=False),
        ),
    ),
)

_ML = "org.apache.spark.ml."
_FOREST = _ML + "classification.RandomForestClassificationModel"
#: (model class, file name) -> (the Spark schema Spark's writer gives it, its rows from the
#: local format): the stages ``training.features`` builds
DATA_FILES: dict[tuple[str, str], tuple[dict[str, Any], Callable[[_Reader], list[Any]]]] = {
    (_ML + "feature.StringIndexerModel", "data"): (
        _struct(_field("labelsArray", _array(_array("string", True), True))),
        lambda r: [{"labelsArray": r.array(lambda r: r.array(_Reader.utf))}],
    ),
    (_ML + "feature.OneHotEncoderModel", "data"): (
        _struct(_field("categorySizes", _array("integer"))),
        lambda r: [{"categorySizes": r.ints()}],
    ),
    (_ML + "feature.StandardScalerModel", "data"): (
        _struct(_field("std", VECTOR), _field("mean", VECTOR)),
        lambda r: [{"std": r.vector(), "mean": r.vector()}],
    ),
    (_ML + "regression.LinearRegressionModel", "data"): (
        _struct(
            _field("intercept", "double", nullable=False),
            _field("coefficients", VECTOR),
            _field("scale", "double", nullable=False),
        ),
        lambda r: [{"intercept": r.double(), "coefficients": r.vector(), "scale": r.double()}],
    ),
    (_ML + "clustering.KMeansModel", "data"): (
        _struct(_field("clusterIdx", "integer", nullable=False), _field("clusterCenter", VECTOR)),
        lambda r: r.array(lambda r: {"clusterIdx": r.int(), "clusterCenter": r.vector()}),
    ),
    (_FOREST, "treesMetadata"): (
        _struct(
            _field("_1", "integer", nullable=False),
            _field("_2", "string"),
            _field("_3", "double", nullable=False),
        ),
        lambda r: r.array(lambda r: {"_1": r.int(), "_2": r.utf(), "_3": r.double()}),
    ),
    (_FOREST, "data"): (
        _struct(_field("treeID", "integer", nullable=False), _field("nodeData", _NODE)),
        _forest_rows,
    ),
}
