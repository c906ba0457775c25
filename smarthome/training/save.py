"""Save a ``PipelineModel`` with its stages written side by side, in Spark's own format.

``PipelineModel.save`` writes the pipeline's metadata and then each stage, one after another:
for the forest's pipeline that is 11 small Spark jobs in a row, the longest path of a set.
Here Spark's own writers do the same writes (the pipeline's metadata through
``DefaultParamsWriter.saveMetadata`` with the ``stageUids`` Spark's pipeline writer records,
each stage through its own ``write().save`` into the folder ``SharedReadWrite.getStagePath``
names), only in parallel threads, so the files are the same and ``PipelineModel.load`` reads
them (a test compares both folders file by file).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession


def save_pipeline(model: PipelineModel, path: Path) -> None:
    """Write ``model`` to ``path`` (a new folder) as ``model.save(str(path))`` would."""
    spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    jvm = spark.sparkContext._jvm
    java_model = model._to_java()
    stages = list(java_model.stages())
    uri = path.resolve().as_uri()
    stages_dir = f"{uri}/stages"
    shared = _scala_object(jvm, "org.apache.spark.ml.Pipeline$SharedReadWrite$")

    def save_metadata() -> None:
        # DefaultParamsWriter.saveMetadata(model, path, spark, None, Some(stageUids)) is
        # saveText(path/metadata, getMetadataToSave(...)); a PipelineModel has no params of
        # its own, so its paramMap is {} and takes the stage uids, as Spark's writer puts them
        writer = _scala_object(jvm, "org.apache.spark.ml.util.DefaultParamsWriter$")
        metadata = writer.getMetadataToSave(java_model, spark._jsparkSession)
        empty = '"paramMap":{}'
        if metadata.count(empty) != 1:
            raise ValueError(f"unexpected PipelineModel metadata from Spark: {metadata}")
        uids = json.dumps({"stageUids": [stage.uid() for stage in stages]}, separators=(",", ":"))
        metadata = metadata.replace(empty, f'"paramMap":{uids}')
        utils = _scala_object(jvm, "org.apache.spark.ml.util.ReadWriteUtils$")
        utils.saveText(f"{uri}/metadata", metadata, spark._jsparkSession)

    def save_stage(index: int, stage: Any) -> None:
        stage.write().save(shared.getStagePath(stage.uid(), index, len(stages), stages_dir))

    with ThreadPoolExecutor(max_workers=len(stages) + 1) as pool:
        jobs = [pool.submit(save_metadata)]
        jobs += [pool.submit(save_stage, i, stage) for i, stage in enumerate(stages)]
        for job in jobs:
            job.result()


def _scala_object(jvm: Any, name: str) -> Any:
    """The instance of a Scala ``object`` (its class ``name`` ends in ``$``), through py4j."""
    package, _, cls = name.rpartition(".")
    java_class = jvm
    for part in package.split("."):
        java_class = getattr(java_class, part)
    return getattr(getattr(java_class, cls), "MODULE$")
