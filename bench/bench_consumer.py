"""Consumer records/s: the dataset looped to 200,000 records, consumed to batch files.

A private broker on free ports; the records are produced first (kafka_producer.py --loop), then
timed: (1) the batch consumer end to end (join, validate, write + fsync + rename, commit per
batch of 1000), (2) the same from first record to last file, (3) a bare kafka-python poll loop
with the same fetch settings (no validation, no files) as the ceiling kafka-python allows here,
and (4) schema validation alone. CPU seconds are shown too: the machine is shared, so wall
time includes waiting for the CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smarthome.cli import add_kafka_config_flag
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.ingest.consumer import CLIENT_CONFIG, BatchConsumer, ConsumerOptions, parse_row
from smarthome.kafka_settings import client_settings, use_kafka_config

ROOT = Path(__file__).resolve().parent.parent
RECORDS = int(os.environ.get("BENCH_CONSUMER_RECORDS", "200000"))
TOPIC = "bench-consumer"


def produce(bootstrap: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "kafka_producer.py",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            TOPIC,
            "--loop",
            "--limit",
            str(RECORDS),
            "--no-progress",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def bare_poll(bootstrap: str) -> tuple[float, float, list[bytes]]:
    """A plain kafka-python poll loop over the topic: seconds, CPU seconds, sample values."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="bench-bare",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CLIENT_CONFIG,
        **client_settings(),
    )
    values: list[bytes] = []
    count = 0
    start, cpu = time.monotonic(), time.process_time()
    while count < RECORDS:
        for records in consumer.poll(timeout_ms=1000).values():
            count += len(records)
            if len(values) < 20000:
                values.extend(r.value for r in records)
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    consumer.close()
    return elapsed, cpu, values


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_consumer",
        description=__doc__.split("\n\n")[0],
        epilog="BENCH_CONSUMER_RECORDS=N sets the record count (default: 200000).",
    )
    add_kafka_config_flag(
        parser, "every client of the run connects with; the private broker must accept them"
    )
    use_kafka_config(parser.parse_args().kafka_config)  # kafka_producer.py inherits it
    with tempfile.TemporaryDirectory(prefix="bench-consumer-") as tmp:
        broker = LocalKafka(Path(tmp) / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            produce(broker.bootstrap_servers)
            options = ConsumerOptions(
                bootstrap_servers=broker.bootstrap_servers,
                topic=TOPIC,
                batch_dir=Path(tmp) / "batches",
                idle_timeout=1.0,
            )
            start, cpu = time.monotonic(), time.process_time()
            summary = BatchConsumer(options).run()
            cpu = time.process_time() - cpu
            end_to_end = summary.last_write_at - start
            steady = summary.last_write_at - summary.first_record_at
            bare_s, bare_cpu, values = bare_poll(broker.bootstrap_servers)
        finally:
            broker.stop()
    assert summary.records == RECORDS, summary
    t0 = time.process_time()
    for value in values:
        parse_row(value)
    validate_s = (time.process_time() - t0) / len(values) * RECORDS

    rows = [
        ("batch consumer, end to end (incl. group join)", end_to_end, cpu),
        ("batch consumer, first record to last file", steady, None),
        ("bare kafka-python poll loop (ceiling)", bare_s, bare_cpu),
        ("schema validation alone (CPU)", validate_s, validate_s),
    ]
    print(
        f"{RECORDS:,} records, {summary.files} files of 1,000, fsync + rename + commit each; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| measure | seconds | records/s | CPU s | records per CPU s |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, cpu_s in rows:
        per_cpu = f"{RECORDS / cpu_s:,.0f}" if cpu_s else "-"
        cpu_text = f"{cpu_s:.2f}" if cpu_s is not None else "-"
        print(f"| {name} | {seconds:.2f} | {RECORDS / seconds:,.0f} | {cpu_text} | {per_cpu} |")
    print(f"\nconsumer / bare poll loop: {bare_s / end_to_end:.0%} of the kafka-python ceiling")
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())
