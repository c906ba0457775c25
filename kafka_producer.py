"""Stream the smart-home dataset into Kafka as keyed JSON records (DESIGN §3-4).

Every row is validated first; invalid rows are reported by CSV line number and not sent.
Records go out with acks=all and idempotence on; each send's outcome is counted and the run
ends with ``delivered N, failed M`` (non-zero exit if anything failed). Ctrl-C flushes what
is in flight and prints the counts.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smarthome.cli import add_kafka_flags, add_metrics_flag, apply_kafka_flags, number, run
from smarthome.config import env, help_default
from smarthome.errors import UserError
from smarthome.ingest import producer as kp
from smarthome.ingest.dataset import read_dataset
from smarthome.ingest.synthetic import synthetic_records

PROG = "kafka_producer.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_kafka_flags(parser)
    parser.add_argument(
        "--dataset",
        type=Path,
        default=Path(env("DATASET_PATH")),
        help=f"CSV file to stream {help_default('DATASET_PATH')}",
    )
    parser.add_argument(
        "--rate",
        type=number(float, "--rate"),
        default=0.0,
        help="records per second; 0 = as fast as possible (default: 0)",
    )
    parser.add_argument(
        "--limit",
        type=number(int, "--limit"),
        default=0,
        help="stop after this many records; 0 = the whole dataset, or forever with --loop",
    )
    parser.add_argument("--loop", action="store_true", help="replay the dataset until --limit")
    parser.add_argument(
        "--jitter-ms",
        nargs=2,
        type=number(float, "--jitter-ms"),
        metavar=("LOW", "HIGH"),
        default=None,
        help="random delay between records, e.g. 10 100 as the original (default: off)",
    )
    parser.add_argument(
        "--partitions",
        type=number(int, "--partitions", 1),
        default=None,
        help="create the topic with this many partitions if it does not exist",
    )
    add_metrics_flag(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--synthetic",
        type=number(int, "--synthetic", 1),
        default=None,
        metavar="N",
        help="send N synthetic records resampled from the dataset (fresh UserIDs, small noise)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of --synthetic; same seed, same records"
    )
    parser.add_argument(
        "--delivery-timeout",
        type=number(float, "--delivery-timeout", 1),
        default=120.0,
        metavar="SECONDS",
        help="give up on a record the brokers have not acknowledged (acks=all) after this"
        " long; it is counted as failed (default: 120)",
    )
    tuning = parser.add_argument_group(
        "throughput tuning (defaults measured by bench/bench_kafka.py)"
    )
    tuning.add_argument(
        "--linger-ms",
        type=number(int, "--linger-ms"),
        default=kp.DEFAULT_LINGER_MS,
        help=f"wait up to this long to fill a batch (default: {kp.DEFAULT_LINGER_MS})",
    )
    tuning.add_argument(
        "--batch-size",
        type=number(int, "--batch-size", 1),
        default=kp.DEFAULT_BATCH_SIZE,
        help=f"max bytes per partition batch (default: {kp.DEFAULT_BATCH_SIZE})",
    )
    tuning.add_argument(
        "--compression",
        choices=["none", "gzip", "lz4"],
        default=kp.DEFAULT_COMPRESSION,
        help=f"batch compression; lz4 needs `pip install lz4` (default: {kp.DEFAULT_COMPRESSION})",
    )
    args = parser.parse_args(argv)
    if args.jitter_ms and args.jitter_ms[0] > args.jitter_ms[1]:
        parser.error("--jitter-ms LOW HIGH needs LOW <= HIGH")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", args.topic):
        parser.error(f"--topic {args.topic!r}: use 1-249 ASCII letters, digits, '.', '_', '-'")
    if args.synthetic and args.loop:
        parser.error("--synthetic N already sets the record count; drop --loop")
    return args


def message_source(
    args: argparse.Namespace, records: list[dict[str, Any]]
) -> tuple[Iterator[tuple[bytes, bytes]], int | None]:
    """The (key, value) stream the flags ask for, and its length (None = endless)."""
    if args.synthetic:
        total = min(args.synthetic, args.limit) if args.limit else args.synthetic
        return map(kp.encode, synthetic_records(records, total, args.seed)), total
    messages = [kp.encode(record) for record in records]
    if args.loop:
        return kp.replay(messages, args.limit, True), args.limit or None
    total = min(args.limit, len(messages)) if args.limit else len(messages)
    return kp.replay(messages, args.limit), total


def main(argv: list[str] | None = None) -> int:
    args = apply_kafka_flags(parse_args(argv))
    dataset = read_dataset(args.dataset)
    for line, reason in dataset.invalid:
        print(f"{args.dataset}:{line}: not sent: {reason}", file=sys.stderr)
    if dataset.invalid:
        print(f"{len(dataset.invalid)} invalid row(s) skipped", file=sys.stderr)
    if not dataset.records:
        raise UserError(f"no valid rows in {args.dataset}; nothing to send")
    source, total = message_source(args, dataset.records)

    if args.partitions:
        print(kp.ensure_topic(args.bootstrap_servers, args.topic, args.partitions), file=sys.stderr)
    producer = kp.make_producer(
        args.bootstrap_servers,
        args.linger_ms,
        args.batch_size,
        args.compression,
        delivery_timeout_s=args.delivery_timeout,
    )
    stream = kp.paced(source, args.rate, args.jitter_ms)
    counts = kp.Counts()
    if args.metrics_port:
        from smarthome.observe.metrics import ProducerCollector, serve

        serve(args.metrics_port, ProducerCollector(counts))
    try:
        counts = kp.send_all(
            producer,
            args.topic,
            stream,
            total,
            progress=not args.no_progress,
            flush_timeout=args.delivery_timeout + 10,  # by then each record is acked or expired
            counts=counts,
        )
    finally:
        kp.close(producer)
    if counts.failed or counts.unconfirmed:
        print(counts.failure_line(args.delivery_timeout), file=sys.stderr)
    print(counts.summary(), flush=True)
    if counts.interrupted:
        raise KeyboardInterrupt
    return 1 if counts.failed or counts.unconfirmed else 0


if __name__ == "__main__":
    run(main, PROG)
