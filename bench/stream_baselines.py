"""The two stream scorers ``bench.bench_stream`` measures next to ``kafka_stream_predict.py``.

- ``bare``: a plain kafka-python loop (poll, the same numpy scorer the API uses, send, offsets
  auto-committed): no transactions, so at-least-once. The floor the exactly-once scorer
  is compared with: what the transactions cost.
- ``spark``: what users would reach for, a Spark Structured Streaming query: a Kafka
  ``readStream``, the record's JSON parsed, ``PipelineModel.transform`` with the set's three
  pipelines, a Kafka sink (at-least-once), the default trigger, ``local[2]``.

Both write one JSON prediction per input record to the output topic, naming the input's
topic, partition and offset, and print ``ready`` once they run. Each runs in its own process
so its CPU and start-up are its own: ``python -m bench.stream_baselines bare|spark ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smarthome.cli import add_kafka_config_flag
from smarthome.contracts.model_sets import MODEL_NAMES
from smarthome.contracts.predictions import EFFICIENCY_LABELS
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.devtools.workspace import CHECKOUT
from smarthome.kafka_settings import client_settings, current, use_kafka_config

#: where `make spark-kafka-jars` resolves bench/spark-kafka/pom.xml
SPARK_KAFKA_JARS = CHECKOUT / ".cache" / "spark-kafka-jars"


def prediction(
    topic: str, partition: int, offset: int, timestamp_ms: int, record: dict[str, Any], scores
) -> bytes:
    """One output value of the bare loop: the fields of ``contracts.predictions.Prediction``."""
    (efficiency_class, probability), malfunctions, segment, set_name = scores
    return json.dumps(
        {
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "user_id": record["UserID"],
            "device_type": record["DeviceType"],
            "predicted_efficiency_class": efficiency_class,
            "label": EFFICIENCY_LABELS[efficiency_class],
            "probability_of_predicted_class": probability,
            "predicted_malfunctions": malfunctions,
            "device_segment_id": segment,
            "model_set": set_name,
            "event_time_ms": timestamp_ms,
            "scored_time_ms": int(time.time() * 1000),
        },
        separators=(",", ":"),
    ).encode()


def run_bare(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer, KafkaProducer

    from smarthome.scoring.model_set import ModelSet

    models = ModelSet.load(args.set_dir)
    consumer = KafkaConsumer(
        args.input_topic,
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        isolation_level="read_committed",
        fetch_max_wait_ms=100,
        max_poll_records=2000,
        **client_settings(),
    )
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap_servers,
        acks="all",
        linger_ms=1,
        batch_size=262_144,
        **client_settings(),
    )
    print("ready", flush=True)
    try:
        while True:
            for part, messages in consumer.poll(timeout_ms=100).items():
                records = [json.loads(m.value) for m in messages]
                efficiency = models.predict_efficiency(records)
                malfunctions = models.predict_malfunction(records)
                segments = models.segment(records)
                for i, m in enumerate(messages):
                    scores = (efficiency[i], malfunctions[i], segments[i], models.name)
                    value = prediction(
                        part.topic, part.partition, m.offset, m.timestamp, records[i], scores
                    )
                    producer.send(args.output_topic, key=m.key, value=value)
    finally:
        producer.close(timeout=5)
        consumer.close()


def spark_session(jars: list[Path]) -> Any:
    """local[2] with the project's small-job settings and the Kafka connector's jars."""
    from pyspark.sql import SparkSession

    from smarthome.training.spark import CONF

    builder = SparkSession.builder.master("local[2]").appName("bench-stream-spark")
    for key, value in CONF.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_jars(folder: Path = SPARK_KAFKA_JARS) -> list[Path]:
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("spark-sql-kafka-0-10") for j in jars):
        raise SystemExit(
            f"the Spark Kafka connector is not in {folder}; run `make spark-kafka-jars`"
        )
    return jars


def spark_kafka_options() -> dict[str, str]:
    """The --kafka-config file in force as the Kafka source's and sink's options: Java's
    client properties (``ClientProperties.java_properties``) prefixed ``kafka.``."""
    properties = current()
    if properties is None:
        return {}
    return {f"kafka.{key}": value for key, value in properties.java_properties().items()}


def run_spark(args: argparse.Namespace) -> int:
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from smarthome.training.pipelines import model_input

    jars = spark_jars()
    spark = spark_session(jars)
    connector = next(j.name for j in jars if j.name.startswith("spark-sql-kafka-0-10"))
    print(f"spark {spark.version}, connector {connector}", file=sys.stderr, flush=True)
    models = {name: PipelineModel.load(str(args.set_dir / name)) for name in MODEL_NAMES}
    security = spark_kafka_options()  # {} in plaintext
    schema = T.StructType(
        [
            T.StructField("UserID", T.LongType()),
            T.StructField("DeviceType", T.StringType()),
            T.StructField("UsageHoursPerDay", T.DoubleType()),
            T.StructField("EnergyConsumption", T.DoubleType()),
            T.StructField("UserPreferences", T.IntegerType()),
            T.StructField("MalfunctionIncidents", T.IntegerType()),
            T.StructField("DeviceAgeMonths", T.IntegerType()),
            T.StructField("SmartHomeEfficiency", T.IntegerType()),
        ]
    )
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap_servers)
        .option("subscribe", args.input_topic)
        .option("startingOffsets", "earliest")
        .option("kafka.isolation.level", "read_committed")
        .options(**security)
        .load()
    )
    carried = ["source_topic", "source_partition", "source_offset", "event_time_ms"]
    rows = source.select(
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        (F.unix_micros("timestamp") / 1000).cast("long").alias("event_time_ms"),
        F.from_json(F.col("value").cast("string"), schema).alias("record"),
    ).select(*carried, "record.*")
    rows = model_input(rows)
    inputs = [*carried, *schema.fieldNames()]
    # the three pipelines name their columns alike (features, prediction): keep each answer
    # under its own name and hand the next pipeline the input columns only
    chosen = F.col("prediction").cast("int")
    efficiency = (
        models["efficiency"]
        .transform(rows)
        .select(
            *inputs,
            chosen.alias("predicted_efficiency_class"),
            F.element_at(vector_to_array("probability"), chosen + 1).alias(
                "probability_of_predicted_class"
            ),
        )
    )
    answers = ["predicted_efficiency_class", "probability_of_predicted_class"]
    malfunction = (
        models["malfunction"]
        .transform(efficiency)
        .select(*inputs, *answers, F.col("prediction").alias("predicted_malfunctions"))
    )
    answers.append("predicted_malfunctions")
    scored = (
        models["clustering"]
        .transform(malfunction)
        .select(*inputs, *answers, F.col("prediction").cast("int").alias("device_segment_id"))
    )
    label = F.when(F.col("predicted_efficiency_class") == 1, EFFICIENCY_LABELS[1]).otherwise(
        EFFICIENCY_LABELS[0]
    )
    value = F.to_json(
        F.struct(
            "source_topic",
            "source_partition",
            "source_offset",
            F.col("UserID").alias("user_id"),
            F.col("DeviceType").alias("device_type"),
            "predicted_efficiency_class",
            label.alias("label"),
            "probability_of_predicted_class",
            "predicted_malfunctions",
            "device_segment_id",
            F.lit(args.set_dir.name).alias("model_set"),
            "event_time_ms",
            (F.unix_micros(F.current_timestamp()) / 1000).cast("long").alias("scored_time_ms"),
        )
    )
    checkpoint = Path(tempfile.mkdtemp(prefix="bench-stream-spark-"))
    query = (
        scored.select(F.col("UserID").cast("string").alias("key"), value.alias("value"))
        .writeStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap_servers)
        .option("topic", args.output_topic)
        .option("checkpointLocation", str(checkpoint))
        .options(**security)
        .start()
    )
    print("ready", flush=True)
    seen = None
    while not query.awaitTermination(10):
        # where a micro-batch's time goes, for the log: Spark's own progress report
        progress = query.lastProgress
        if progress and progress["batchId"] != seen:
            seen = progress["batchId"]
            print(
                f"batch {seen}: {progress['numInputRows']} rows,"
                f" {json.dumps(progress['durationMs'], sort_keys=True)}",
                file=sys.stderr,
                flush=True,
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream_baselines", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("kind", choices=["bare", "spark"])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--set-dir", type=Path, required=True, help="a published model set")
    parser.add_argument("--group", default="bench-stream-bare", help="bare: consumer group")
    add_kafka_config_flag(parser, "to connect with (which the benchmark passes on)")
    args = parser.parse_args(argv)
    use_kafka_config(args.kafka_config)
    return run_bare(args) if args.kind == "bare" else run_spark(args)


if __name__ == "__main__":
    stop_children_at_exit()  # the Spark JVM stops with this process on SIGTERM/Ctrl-C
    raise SystemExit(main())
