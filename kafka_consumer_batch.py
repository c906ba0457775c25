"""Consume the smart-home topic into batch CSV files, exactly once (DESIGN §4-5).

Each batch file holds records of one partition and is named after the offsets it covers; the
offset is committed only after the file is durably renamed into place. Invalid messages go to
``<batch-dir>/rejected/``. Stops after ``--idle-timeout`` seconds without a new record unless
``--follow`` (time with the broker down does not count); waits for a broker that is not up
yet (``--broker-wait``). Ctrl-C writes what is buffered, commits and exits. A full disk ends it
with one line naming the folder and its free space; what was not yet in a file is read again.
"""

from __future__ import annotations

import argparse

from smarthome.cli import (
    add_group_member_flags,
    add_kafka_flags,
    add_metrics_flag,
    apply_kafka_flags,
    folder,
    group_member_options,
    install_stop_handlers,
    number,
    run,
)
from smarthome.config import CONSUMER_GROUP, env, help_default
from smarthome.errors import disk_full_is_a_user_error
from smarthome.ingest.consumer import BatchConsumer, ConsumerOptions

PROG = "kafka_consumer_batch.py"
NOTHING_LOST = "nothing was lost, the records not yet in a file will be read again"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_kafka_flags(parser)
    parser.add_argument(
        "--batch-dir",
        default=env("BATCH_DIR"),
        help=f"folder of batch files (created if missing) {help_default('BATCH_DIR')}",
    )
    parser.add_argument(
        "--group", default=CONSUMER_GROUP, help=f"consumer group (default: {CONSUMER_GROUP})"
    )
    parser.add_argument(
        "--batch-size",
        type=number(int, "--batch-size", exclusive=True),
        default=1000,
        help="records per batch file (default: 1000)",
    )
    parser.add_argument(
        "--max-batch-age",
        type=number(float, "--max-batch-age", exclusive=True),
        default=10.0,
        help="publish a partial batch after this many seconds (default: 10)",
    )
    add_group_member_flags(parser)
    add_metrics_flag(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--instance-id",
        default=None,
        help="static group membership id (KIP-345): a restarted process with the same id "
        "takes its partitions back without waiting for the session timeout",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = apply_kafka_flags(parse_args(argv))
    batch_dir = folder(args.batch_dir, "--batch-dir")
    options = ConsumerOptions(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        batch_dir=batch_dir,
        group=args.group,
        batch_size=args.batch_size,
        max_batch_age=args.max_batch_age,
        progress=not args.no_progress,
        instance_id=args.instance_id,
        **group_member_options(args),
    )
    # a batch that does not fit is not published nor committed: its records are read again
    with disk_full_is_a_user_error(batch_dir, NOTHING_LOST):
        batch_consumer = BatchConsumer(options)
        if args.metrics_port:
            from smarthome.observe.metrics import ConsumerCollector, serve

            serve(args.metrics_port, ConsumerCollector(batch_consumer))
        install_stop_handlers(batch_consumer)
        summary = batch_consumer.run()
    print(f"{PROG}: {summary.line(args.topic, batch_dir)} (stopped: {summary.stopped_by})")
    return 130 if summary.stopped_by == "SIGINT" else 0


if __name__ == "__main__":
    run(main, PROG)
