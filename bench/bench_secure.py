"""What security costs: producer and consumer records/s over SASL_SSL next to plaintext.

Two private brokers on free ports in the same run: one plaintext (``make kafka-up``), one
secured as ``make kafka-up SECURE=1`` runs it (SASL_SSL, SCRAM-SHA-512, ACLs), each stage as
its own user there. On each, in turn:

1. ``kafka_producer.py --synthetic N`` (acks=all, idempotent, the stage's defaults): records/s
   from its start to its last acknowledgement (the process's wall time);
2. ``kafka_consumer_batch.py`` on those N records: records/s from its start to its last
   batch file published (fsynced, offsets committed);
3. a bare kafka-python poll loop over the same records, no validation and no files: what the
   client itself reads per second, where TLS decryption shows most.

    python -m bench.bench_secure [--records 100000] [--rounds 2]

The two kinds run in turn, round after round (plaintext, secured, plaintext, ...), each round
on fresh brokers, and the best round of each is shown: the first broker of a run starts on a
colder machine (page cache, CPU frequency) than the next.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smarthome.contracts.batch_files import list_batch_files
from smarthome.devtools.kafka_security import STREAM_TOPIC
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port
from smarthome.devtools.processes import stop_children_at_exit

ROOT = Path(__file__).resolve().parent.parent


def stage(script: str, config: Path | None, bootstrap: str, *args: str) -> float:
    """Run a stage to its end; its wall time in seconds."""
    login = ["--kafka-config", str(config)] if config else []
    started = time.monotonic()
    subprocess.run(
        [sys.executable, script, "--bootstrap-servers", bootstrap, *login, *args],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def consume_to_files(broker: LocalKafka, config: Path | None, batch_dir: Path) -> float:
    """Seconds from the batch consumer's start to its last file."""
    login = ["--kafka-config", str(config)] if config else []
    started = time.time()
    subprocess.run(
        [sys.executable, "kafka_consumer_batch.py", "--bootstrap-servers"]
        + [broker.bootstrap_servers, *login, "--batch-dir", str(batch_dir)]
        + ["--batch-size", "1000", "--idle-timeout", "2", "--no-progress"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return max(f.stat().st_mtime for f in list_batch_files(batch_dir)) - started


def bare_poll(broker: LocalKafka, settings: dict, records: int) -> float:
    """Seconds a bare kafka-python consumer takes to read ``records`` from the start."""
    from kafka import KafkaConsumer

    started = time.monotonic()
    consumer = KafkaConsumer(
        STREAM_TOPIC,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **settings,
    )
    seen = 0
    try:
        while seen < records:
            for batch in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                seen += len(batch)
    finally:
        consumer.close()
    return time.monotonic() - started


def measure(broker: LocalKafka, records: int, work: Path) -> dict[str, float]:
    secure = broker.secure
    work.mkdir(parents=True, exist_ok=True)
    producer = broker.client_properties("producer") if secure else None
    consumer = broker.client_properties("consumer") if secure else None
    produced = stage(
        "kafka_producer.py",
        producer,
        broker.bootstrap_servers,
        "--synthetic",
        str(records),
        "--partitions",
        "3",
        "--no-progress",
    )
    to_files = consume_to_files(broker, consumer, work / ("secure" if secure else "plain"))
    settings = {}
    if secure:
        from smarthome.devtools.kafka_security import client_settings

        settings = client_settings(broker.secure_dir, "admin")
    bare = bare_poll(broker, settings, records)
    return {"producer": records / produced, "consumer": records / to_files, "bare": records / bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="default 100,000")
    parser.add_argument("--rounds", type=int, default=2, help="default 2")
    args = parser.parse_args(argv)
    stop_children_at_exit()
    rounds: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-secure-") as tmp:
        work = Path(tmp)
        for round_ in range(args.rounds):
            for name, secure in (("plaintext", False), ("SASL_SSL + SCRAM-SHA-512 + ACLs", True)):
                broker = LocalKafka(
                    work / f"kafka-{round_}-{int(secure)}",
                    port=free_port(),
                    controller_port=free_port(),
                    die_with_parent=True,
                    secure=secure,
                )
                broker.start()
                try:
                    rounds.setdefault(name, []).append(
                        measure(broker, args.records, work / f"round{round_}")
                    )
                finally:
                    broker.stop()
    results = {name: {k: max(r[k] for r in runs) for k in runs[0]} for name, runs in rounds.items()}
    load = os.getloadavg()[0]
    print(
        f"\n{args.records:,} synthetic records, one private broker each, 3 partitions;"
        f" best of {args.rounds} round(s);"
        f" load average {load:.1f} on {os.cpu_count()} cores\n"
    )
    print("| connection | producer records/s | batch consumer records/s | bare poll records/s |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['producer']:,.0f} | {r['consumer']:,.0f} | {r['bare']:,.0f} |")
    plain, secured = results.values()
    print(
        "\nsecured / plaintext: producer {:.2f}x, batch consumer {:.2f}x, bare poll {:.2f}x".format(
            secured["producer"] / plain["producer"],
            secured["consumer"] / plain["consumer"],
            secured["bare"] / plain["bare"],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
