"""The files of a model set besides the Spark models: scoring.json, clusters.json, manifest.json."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smarthome import __version__
from smarthome.contracts import manifest as contract
from smarthome.contracts import model_sets as registry
from smarthome.contracts.scoring_file import ScoringFile

if TYPE_CHECKING:  # the step types, without an import cycle at run time
    from pyspark.sql import SparkSession

    from smarthome.training.batches import Batches
    from smarthome.training.config import TrainConfig
    from smarthome.training.planner import PlannedSet
    from smarthome.training.set_parts import Fitted, Split

SPLIT_METHOD = "held out iff pmod(xxhash64(UserID, seed), 100) < test_percent"


def write_set(
    tmp: Path,
    planned: PlannedSet,
    data: Batches,
    rows: Split,
    fitted: Fitted,
    cfg: TrainConfig,
    spark: SparkSession,
    seconds: float,
) -> None:
    """Write the set's JSON files into ``tmp`` (each fsynced; the manifest last)."""
    write_json(tmp / registry.SCORING, scoring_file(fitted.exports))
    fitted.clusters.write(tmp / registry.CLUSTERS)
    manifest(tmp.name, planned, data, rows, fitted, cfg, spark, seconds).write(
        tmp / registry.MANIFEST
    )


def scoring_file(exports: dict[str, Any]) -> dict[str, Any]:
    """scoring.json's content: the exported pipelines (``export_pipeline``), one per model,
    checked by the same contract the API reads the file with."""
    return ScoringFile(**exports).model_dump(mode="json")


def manifest(
    name: str,
    planned: PlannedSet,
    data: Batches,
    rows: Split,
    fitted: Fitted,
    cfg: TrainConfig,
    spark: SparkSession,
    seconds: float,
) -> contract.Manifest:
    """The set's manifest; a section that does not match the contract fails here, not later."""
    return contract.Manifest(
        set=planned.number,
        name=name,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        batch_files=[p.name for p in planned.files],
        rows=data.rows,
        rows_skipped=data.rows_skipped,
        rows_skipped_by_file=data.skipped_by_file,
        split=contract.Split(
            method=SPLIT_METHOD,
            seed=cfg.seed,
            test_percent=cfg.test_percent,
            train_rows=rows.train_rows,
            test_rows=rows.test_rows,
        ),
        config=contract.TrainSettings(**asdict(cfg)),
        versions=contract.Versions(**versions(spark)),
        seconds=round(seconds, 3),
        models=contract.Models.model_validate(fitted.sections),
    )


def versions(spark: SparkSession) -> dict[str, str]:
    import numpy
    import pandas
    import pyspark

    return {
        "spark": spark.version,
        "pyspark": pyspark.__version__,
        "python": platform.python_version(),
        "java": java_version(spark),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "smarthome": __version__,
    }


#: application id -> the Java version its driver runs on
_JAVA_VERSIONS: dict[str, str] = {}


def java_version(spark: SparkSession) -> str:
    """The Java version the driver runs on, asked once per application through a public SQL
    function (it costs a small Spark job)."""
    application = spark.sparkContext.applicationId
    if application not in _JAVA_VERSIONS:
        query = "SELECT java_method('java.lang.System', 'getProperty', 'java.version')"
        _JAVA_VERSIONS[application] = str(spark.sql(query).first()[0])
    return _JAVA_VERSIONS[application]


def write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
