"""Read batch files (DESIGN §5) into one Spark DataFrame of valid records.

A file whose header is wrong (missing/unexpected column) or that is empty stops the run with
one line naming the file: training on it would be wrong. A single bad row (unparseable, wrong
number of fields, out of the record schema) is skipped and counted: one row must not block
training on thousands of good ones.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from smarthome.contracts.records import DEVICE_TYPES, INT_COLUMNS, RANGES, RECORD_COLUMNS
from smarthome.errors import UserError

CORRUPT = "_corrupt_record"
FILE = "_batch_file"


@dataclass
class Batches:
    """The valid rows of some batch files (cached), and what was skipped where."""

    df: DataFrame
    files: list[Path]
    rows: int
    rows_skipped: int
    skipped_by_file: dict[str, int] = field(default_factory=dict)
    #: the cached frames behind ``df`` (the rows as read, marked valid or not), kept until
    #: :meth:`release`: ``df`` is cached when its first job reads it, from them
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        """Free the cached rows (a long ``--watch`` reads a new set every round)."""
        for frame in [self.df, *self.cached]:
            frame.unpersist()


def check_header(path: Path) -> bool:
    """Raise UserError unless the file starts with the record header; False if it has no rows."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            has_rows = next(reader, None) is not None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"batch file {path}: cannot be read ({exc})") from None
    if not header:
        raise UserError(
            f"batch file {path} is empty (no header row); delete it or re-run "
            "`python kafka_consumer_batch.py` to write it again"
        )
    names = [h.strip() for h in header]
    missing = [c for c in RECORD_COLUMNS if c not in names]
    if missing:
        raise UserError(
            f"batch file {path}: missing column(s) {', '.join(missing)} "
            f"(expected header: {','.join(RECORD_COLUMNS)})"
        )
    if names != RECORD_COLUMNS:
        extra = [n for n in names if n not in RECORD_COLUMNS]
        what = f"unexpected column(s) {', '.join(extra)}" if extra else "columns out of order"
        raise UserError(f"batch file {path}: {what} (expected header: {','.join(RECORD_COLUMNS)})")
    return has_rows


def _valid(col: str) -> Column:
    """True when the string column holds a value the record schema accepts."""
    raw = F.trim(F.col(col))
    if col == "DeviceType":
        return F.coalesce(F.col(col).isin(*DEVICE_TYPES), F.lit(False))
    if col in INT_COLUMNS:
        value = raw.try_cast(_kind(col))  # null when it does not fit the column's type
        ok = F.coalesce(raw.rlike(r"^[+-]?\d{1,18}$"), F.lit(False)) & value.isNotNull()
    else:
        value = raw.try_cast("double")
        ok = value.isNotNull() & ~F.isnan(value) & (F.abs(value) < float("inf"))
    low, high = RANGES[col]
    if low is not None:
        ok = ok & (value >= low)
    if high is not None:
        ok = ok & (value <= high)
    return F.coalesce(ok, F.lit(False))


def _kind(col: str) -> str:
    return "long" if col == "UserID" else "int" if col in INT_COLUMNS else "double"


def _typed(col: str) -> Column:
    if col == "DeviceType":
        return F.col(col)
    return F.trim(F.col(col)).try_cast(_kind(col)).alias(col)


def read_batches(
    spark: SparkSession, files: list[Path], rows_per_partition: int | None = None
) -> Batches:
    """The valid records of ``files`` (in order) as a cached DataFrame with typed columns.

    ``rows_per_partition``: at most one partition per that many valid rows (never more
    partitions than Spark's reader made); None keeps the reader's partitions.
    """
    if not files:
        raise UserError("no batch files given")
    with_rows = [p for p in files if check_header(p)]
    schema = StructType(
        [StructField(c, StringType()) for c in RECORD_COLUMNS]
        + [StructField(CORRUPT, StringType())]
    )
    if not with_rows:
        empty = spark.createDataFrame([], schema.add(FILE, StringType()))
        return Batches(empty.select(*RECORD_COLUMNS), list(files), 0, 0)
    raw = (
        spark.read.options(header=True, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT)
        .schema(schema)
        .csv([str(p) for p in with_rows])
        .withColumn(FILE, F.input_file_name())
    )
    valid = F.col(CORRUPT).isNull()
    for col in RECORD_COLUMNS:
        valid = valid & _valid(col)
    marked = raw.withColumn("_valid", valid).cache()
    counts = marked.groupBy(FILE, "_valid").count().collect()
    rows = sum(r["count"] for r in counts if r["_valid"])
    skipped_by_file = {
        Path(r[FILE]).name: r["count"] for r in counts if not r["_valid"] and r["count"]
    }
    df = marked.where("_valid").select(*[_typed(c) for c in RECORD_COLUMNS])
    if rows_per_partition:
        df = df.coalesce(max(1, math.ceil(rows / rows_per_partition)))  # never adds partitions
    # no job of its own to fill the cache: the caller's first job does (a set's split), and
    # until then ``marked`` stays cached, so the rows counted are the rows read
    return Batches(
        df.cache(), list(files), rows, sum(skipped_by_file.values()), skipped_by_file, [marked]
    )
