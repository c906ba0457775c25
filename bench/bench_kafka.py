"""Producer records/s: kafka_producer.py's code next to Kafka's Java ProducerPerformance.

Both run on the same private broker (free ports, temp dir), with the same record count, the
same average value size, acks=all, idempotence on, and the same linger/batch/compression.
A second table compares producer settings (compression, linger/batch) on fewer records.
``python -m bench.bench_kafka [--records N] [--tuning-records N]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from smarthome.cli import add_kafka_config_flag
from smarthome.devtools.java import java_executable
from smarthome.devtools.local_kafka import LOG4J2_CONFIG, LocalKafka
from smarthome.devtools.ports import free_port
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.ingest import producer as kp
from smarthome.ingest.dataset import read_dataset
from smarthome.kafka_settings import current, use_kafka_config

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "dataset" / "smart_home_device_usage_data.csv"


def python_run(
    bootstrap: str,
    messages: list[tuple[bytes, bytes]],
    records: int,
    linger_ms: int = kp.DEFAULT_LINGER_MS,
    batch_size: int = kp.DEFAULT_BATCH_SIZE,
    compression: str = kp.DEFAULT_COMPRESSION,
) -> tuple[float, float]:
    """(records/s, CPU µs per record) of send_all on a fresh topic, timed through the flush."""
    topic = f"bench-py-{uuid.uuid4().hex[:8]}"
    kp.ensure_topic(bootstrap, topic, 1)
    producer = kp.make_producer(bootstrap, linger_ms, batch_size, compression)
    try:
        producer.send(topic, key=b"warm-up", value=b"{}").get(timeout=30)
        cpu, start = time.process_time(), time.perf_counter()
        counts = kp.send_all(producer, topic, kp.replay(messages, records, loop=True), None, False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        producer.close(timeout=10)
    if counts.delivered != records:
        raise SystemExit(f"python producer delivered {counts.delivered} of {records}")
    return records / seconds, cpu / records * 1e6


def java_run(
    jars: Path,
    bootstrap: str,
    records: int,
    record_size: int,
    props: list[str],
    config: Path | None = None,
) -> float:
    """records/s reported by org.apache.kafka.tools.ProducerPerformance; ``config``: its
    --producer.config (the security settings in force, ``java_config``)."""
    topic = f"bench-java-{uuid.uuid4().hex[:8]}"
    kp.ensure_topic(bootstrap, topic, 1)
    cmd = [
        java_executable(), "-Xmx512m", "-XX:+UseSerialGC",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}", "-cp", str(jars / "*"),
        "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
        "--num-records", str(records), "--record-size", str(record_size), "--throughput", "-1",
        *(["--producer.config", str(config)] if config else []),
        "--producer-props", f"bootstrap.servers={bootstrap}", *props,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", out)
    if not match:
        raise SystemExit(f"ProducerPerformance printed no summary: {out[-500:]}")
    return float(match.group(2))


def java_config(folder: Path) -> Path | None:
    """The --kafka-config file in force as Java client properties (0600: it holds the
    password) for ProducerPerformance; None without one."""
    from smarthome.client_properties import write_client_properties

    properties = current()
    if properties is None:
        return None
    return write_client_properties(folder / "java-client.properties", properties.java_properties())


def java_props(linger_ms: int, batch_size: int, compression: str) -> list[str]:
    return [
        "acks=all",
        "enable.idempotence=true",
        f"linger.ms={linger_ms}",
        f"batch.size={batch_size}",
        f"compression.type={compression}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--tuning-records", type=int, default=50_000, help="0 = skip tuning")
    add_kafka_config_flag(
        parser, "every client of the run connects with; the private broker must accept them"
    )
    args = parser.parse_args()
    use_kafka_config(args.kafka_config)

    messages = [kp.encode(r) for r in read_dataset(DATASET).records]
    value_size = round(sum(len(v) for _, v in messages) / len(messages))
    key_size = sum(len(k) for k, _ in messages) / len(messages)
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        broker = LocalKafka(Path(tmp) / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            bootstrap = broker.bootstrap_servers
            config = java_config(Path(tmp))
            props = java_props(kp.DEFAULT_LINGER_MS, kp.DEFAULT_BATCH_SIZE, kp.DEFAULT_COMPRESSION)
            # best of 2, alternating: the machine is shared, so one run alone is noisy
            javas, pythons = [], []
            for _ in range(2):
                javas.append(
                    java_run(broker.jars_dir, bootstrap, args.records, value_size, props, config)
                )
                pythons.append(python_run(bootstrap, messages, args.records))
            java = max(javas)
            python, cpu_us = max(pythons)
            tuning = []
            if args.tuning_records:
                variants = [("none", 5, 16_384), ("none", 20, 262_144), ("gzip", 20, 262_144)]
                if _has_lz4():
                    variants.append(("lz4", 20, 262_144))
                for compression, linger, batch in variants:
                    rate, cpu = python_run(
                        bootstrap, messages, args.tuning_records, linger, batch, compression
                    )
                    tuning.append((compression, linger, batch, rate, cpu))
        finally:
            broker.stop()

    load = os.getloadavg()[0]
    print(
        f"{args.records:,} records of the dataset looped (value {value_size} B avg, key"
        f" {key_size:.1f} B); acks=all, idempotence on, linger.ms={kp.DEFAULT_LINGER_MS},"
        f" batch.size={kp.DEFAULT_BATCH_SIZE}, compression={kp.DEFAULT_COMPRESSION};"
        f" one private broker, 1 partition; load average {load:.1f} on {os.cpu_count()} cores\n"
    )
    print("Best of 2 alternating runs each.\n")
    print("| producer | records/s | CPU µs/record | fraction of Java |")
    print("|---|---:|---:|---:|")
    print(
        f"| kafka_producer.py (kafka-python) | {python:,.0f} | {cpu_us:.0f} | {python / java:.1%} |"
    )
    print(f"| Java ProducerPerformance (kafka-clients 4.1.2) | {java:,.0f} | | 100% |")
    if tuning:
        print(f"\nkafka-python settings, {args.tuning_records:,} records each:\n")
        print("| compression | linger.ms | batch.size | records/s | CPU µs/record |")
        print("|---|---:|---:|---:|---:|")
        for compression, linger, batch, rate, cpu in tuning:
            print(f"| {compression} | {linger} | {batch:,} | {rate:,.0f} | {cpu:.0f} |")
    return 0


def _has_lz4() -> bool:
    from kafka.codec import has_lz4

    return bool(has_lz4())


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    raise SystemExit(main())
