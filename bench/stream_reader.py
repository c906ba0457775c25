"""The reader of ``bench.bench_stream``: when does each prediction become readable?

Reads a predictions topic with ``isolation_level=read_committed`` from its start, in a process
of its own (its arrival times must not wait for the benchmark's producer to release the GIL).
After every poll that returned predictions it prints ``<predictions read> <epoch s>`` on
stdout. On SIGTERM it stops reading and writes, for every prediction read, the source
partition and offset it names and when it arrived, to ``--out`` (a ``.npz`` file):

    python -m bench.stream_reader --bootstrap-servers HOST:PORT --topic T --partitions 3 \\
        --out arrivals.npz
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path

import numpy as np

from smarthome.cli import add_kafka_config_flag
from smarthome.kafka_settings import client_settings, use_kafka_config


def read(bootstrap: str, topic: str, partitions: int, stop: threading.Event) -> list:
    """(arrival epoch s, values) per partition batch, until ``stop``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_poll_records=50_000,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **client_settings(),
    )
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    batches: list[tuple[float, list[bytes]]] = []
    count = 0
    try:
        while not stop.is_set():
            polled = consumer.poll(timeout_ms=50)
            if not polled:
                continue
            now = time.time()
            for messages in polled.values():
                batches.append((now, [m.value for m in messages]))
                count += len(messages)
            print(count, repr(now), flush=True)
    finally:
        consumer.close()
    return batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream_reader", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the .npz file written at the end")
    add_kafka_config_flag(parser, "to connect with (which the benchmark passes on)")
    args = parser.parse_args(argv)
    use_kafka_config(args.kafka_config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    batches = read(args.bootstrap_servers, args.topic, args.partitions, stop)
    # parsed once reading is over: no JSON work while the scorer under test needs the CPU
    sources, arrivals = [], []
    for now, values in batches:
        for value in values:
            prediction = json.loads(value)
            sources.append((prediction["source_partition"], prediction["source_offset"]))
            arrivals.append(now)
    np.savez(
        args.out,
        sources=np.array(sources, dtype=np.int64).reshape(-1, 2),
        arrivals=np.array(arrivals, dtype=np.float64),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
