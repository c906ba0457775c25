"""Producer and consumer records/s on a 3-node cluster (RF 3, min ISR 2) next to 1 broker.

Both run in this one process, one after the other, with the same records (the dataset
looped), the same 3-partition topic layout and the same client settings, so the ratio shows
what replication costs here: with ``acks=all`` a batch is acknowledged only once two more
nodes have copied it. Then the cost of fencing per batch file: the ``flock``
check made before each publish next to publishing the file itself.
``python -m bench.bench_cluster [--records N]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from smarthome.cli import add_kafka_config_flag
from smarthome.devtools.kafka_cluster import LocalKafkaCluster
from smarthome.devtools.ports import free_base_port
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.ingest import producer as kp
from smarthome.ingest.batch_writer import BatchWriter
from smarthome.ingest.consumer import BatchConsumer, ConsumerOptions
from smarthome.ingest.dataset import read_dataset
from smarthome.ingest.partition_lock import PartitionLocks
from smarthome.kafka_settings import use_kafka_config

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "dataset" / "smart_home_device_usage_data.csv"
PARTITIONS = 3


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], n: int) -> float:
    """records/s of send_all with acks=all through the final flush."""
    kp.ensure_topic(bootstrap, topic, PARTITIONS)
    producer = kp.make_producer(bootstrap)
    try:
        producer.send(topic, key=b"warm-up", value=b"{}").get(timeout=30)
        start = time.perf_counter()
        counts = kp.send_all(producer, topic, kp.replay(messages, n, loop=True), None, False)
        seconds = time.perf_counter() - start
    finally:
        kp.close(producer)
    if counts.delivered != n:
        raise SystemExit(f"delivered {counts.delivered} of {n}")
    return n / seconds


def consume(bootstrap: str, topic: str, batch_dir: Path, n: int) -> float:
    """records/s of the batch consumer, first record to last published file."""
    options = ConsumerOptions(bootstrap, topic, batch_dir, group=f"bench-{topic}", idle_timeout=2)
    summary = BatchConsumer(options).run()
    if summary.records != n:  # + the warm-up record, which is not a valid record
        raise SystemExit(f"consumer wrote {summary.records} of {n}")
    return n / (summary.last_write_at - summary.first_record_at)


def run_on(nodes: int, tmp: Path, messages: list[tuple[bytes, bytes]], n: int) -> tuple:
    cluster = LocalKafkaCluster(tmp / f"kafka{nodes}", port=free_base_port(nodes), brokers=nodes)
    cluster.start()
    try:
        topic = f"bench-{nodes}-{uuid.uuid4().hex[:6]}"
        sent = produce(cluster.bootstrap_servers, topic, messages, n)
        got = consume(cluster.bootstrap_servers, topic, tmp / f"batches{nodes}", n)
    finally:
        cluster.stop()
    return sent, got


def fencing_cost(tmp: Path, rows: list[list[Any]]) -> tuple[float, float, float]:
    """µs per lock check, µs per acquire+release, µs per published 1,000-row file."""
    locks = PartitionLocks(tmp / "fence")
    locks.acquire("t", 0)
    calls = 100_000
    start = time.perf_counter()
    for _ in range(calls):
        locks.holds("t", 0)
    check = (time.perf_counter() - start) / calls * 1e6
    start = time.perf_counter()
    for i in range(2000):
        locks.acquire("t", i + 1)
        locks.release("t", i + 1)
    take = (time.perf_counter() - start) / 2000 * 1e6
    writer = BatchWriter(tmp / "fence")
    start = time.perf_counter()
    for i in range(50):
        writer.write_batch("t", 0, i * 1000, i * 1000 + 999, rows)
    publish = (time.perf_counter() - start) / 50 * 1e6
    return check, take, publish


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cluster")
    parser.add_argument("--records", type=int, default=100_000)
    add_kafka_config_flag(
        parser, "every client of the run connects with; the private clusters must accept them"
    )
    args = parser.parse_args()
    use_kafka_config(args.kafka_config)
    records = read_dataset(DATASET).records
    messages = [kp.encode(r) for r in records]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as name:
        tmp = Path(name)
        one = run_on(1, tmp, messages, args.records)
        three = run_on(3, tmp, messages, args.records)
        rows = [list(r.values()) for r in records[:1000]]
        check, take, publish = fencing_cost(tmp, rows)
    print(
        f"{args.records:,} records, {PARTITIONS} partitions, acks=all, idempotent; load average"
        f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| Kafka | producer records/s | consumer records/s (to fsynced files) |")
    print("|---|---:|---:|")
    print(f"| 1 broker (RF 1) | {one[0]:,.0f} | {one[1]:,.0f} |")
    print(f"| 3 brokers (RF 3, min ISR 2) | {three[0]:,.0f} | {three[1]:,.0f} |")
    print(f"| 3 brokers / 1 broker | {three[0] / one[0]:.0%} | {three[1] / one[1]:.0%} |")
    print("\n| fencing | µs |")
    print("|---|---:|")
    print(f"| lock check before each publish (`flock`, held) | {check:.2f} |")
    print(f"| take + let go of a partition lock (per assignment) | {take:.1f} |")
    print(
        f"| publish one 1,000-row batch file (write, fsync, rename, dir fsync) | {publish:,.0f} |"
    )
    print(f"\nfencing adds {check / publish:.4%} to publishing a batch file")
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    raise SystemExit(main())
