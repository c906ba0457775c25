"""Score every record of the stream as it arrives, exactly once, with alerts (DESIGN §15).

Reads the smart-home topic as a member of a consumer group (read_committed), scores each
record with the three models of the newest model set, and writes one prediction per record
to the predictions topic, an alert when a threshold is crossed, and a record it cannot score
to the dead-letter topic with the reason. Outputs and the consumed offsets are committed in
one Kafka transaction every --commit-interval-ms, so a read_committed reader sees exactly one
prediction per record through crashes, pauses and broker failovers. A newer model set takes
over between transactions, without a restart. Start more processes with the same --group to
split the partitions. Stops after --idle-timeout seconds without a new record unless
--follow; Ctrl-C commits the open transaction and stops.
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
from smarthome.config import SCORER_GROUP, env, help_default
from smarthome.contracts.predictions import ALERTS_TOPIC, DEAD_LETTER_TOPIC, PREDICTIONS_TOPIC
from smarthome.stream.alerts import (
    DEFAULT_INEFFICIENT_PROBABILITY,
    DEFAULT_MALFUNCTIONS,
    AlertRules,
)
from smarthome.stream.scorer import DEFAULT_COMMIT_INTERVAL_MS, ScorerOptions, StreamScorer

PROG = "kafka_stream_predict.py"
IDLE_HELP = (
    "stop after this many seconds without a new record (default: 30; time spent"
    " waiting for a model set or an unreachable broker does not count)"
)


def probability(text: str) -> float:
    value = number(float, "--alert-inefficient-probability")(text)
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"--alert-inefficient-probability must be <= 1 (got {text})"
        )
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_kafka_flags(parser)
    parser.add_argument(
        "--predictions-topic",
        default=PREDICTIONS_TOPIC,
        help=f"where predictions go, key = UserID (default: {PREDICTIONS_TOPIC})",
    )
    parser.add_argument(
        "--alerts-topic", default=ALERTS_TOPIC, help=f"where alerts go (default: {ALERTS_TOPIC})"
    )
    parser.add_argument(
        "--dead-letter-topic",
        default=DEAD_LETTER_TOPIC,
        help=f"where records that cannot be scored go, with the reason"
        f" (default: {DEAD_LETTER_TOPIC})",
    )
    parser.add_argument(
        "--group", default=SCORER_GROUP, help=f"consumer group (default: {SCORER_GROUP})"
    )
    parser.add_argument(
        "--model-dir",
        default=env("MODEL_DIR"),
        help=f"model sets; the newest is used, a newer one taken up between transactions"
        f" {help_default('MODEL_DIR')}",
    )
    parser.add_argument(
        "--transactional-id",
        default=None,
        help="this process's id at the transaction coordinator; unique per live process"
        " (default: <group>-<host>-<n>, n the lowest number no live scorer on this host"
        " holds, so a restarted scorer takes its predecessor's and aborts what it left open)",
    )
    parser.add_argument(
        "--commit-interval-ms",
        type=number(int, "--commit-interval-ms", 1),
        default=DEFAULT_COMMIT_INTERVAL_MS,
        metavar="MS",
        help="commit a transaction this often (default: %(default)s). Outputs become readable"
        " when their transaction commits, so a record waits up to this long; each commit"
        " costs a few round trips to the brokers, so a shorter interval means fewer records"
        " per second",
    )
    parser.add_argument(
        "--alert-inefficient-probability",
        type=probability,
        default=DEFAULT_INEFFICIENT_PROBABILITY,
        metavar="P",
        help="alert when predicted not efficient with at least this probability"
        " (default: %(default)s: 11%% of the dataset's rows, 99.5%% of them inefficient)",
    )
    parser.add_argument(
        "--alert-malfunctions",
        type=number(float, "--alert-malfunctions"),
        default=DEFAULT_MALFUNCTIONS,
        metavar="M",
        help="alert when at least this many malfunction incidents are predicted"
        " (default: %(default)s: the dataset's mean plus one standard deviation)",
    )
    parser.add_argument(
        "--max-records",
        type=number(int, "--max-records"),
        default=0,
        metavar="N",
        help="stop once at least N records are committed (default: 0 = no limit)",
    )
    add_group_member_flags(parser, IDLE_HELP)
    parser.add_argument(
        "--reload-seconds",
        type=number(float, "--reload-seconds", exclusive=True),
        default=2.0,
        help="how often to look for a newer model set (default: 2)",
    )
    add_metrics_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = apply_kafka_flags(parse_args(argv))
    model_dir = folder(args.model_dir, "--model-dir")
    options = ScorerOptions(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        predictions_topic=args.predictions_topic,
        alerts_topic=args.alerts_topic,
        dead_letter_topic=args.dead_letter_topic,
        group=args.group,
        model_dir=model_dir,
        transactional_id=args.transactional_id,
        commit_interval_ms=args.commit_interval_ms,
        rules=AlertRules(args.alert_inefficient_probability, args.alert_malfunctions),
        max_records=args.max_records,
        **group_member_options(args),
        reload_seconds=args.reload_seconds,
    )
    scorer = StreamScorer(options)
    if args.metrics_port:
        from smarthome.observe.metrics import serve
        from smarthome.observe.scorer_metrics import ScorerCollector

        serve(args.metrics_port, ScorerCollector(scorer))
    install_stop_handlers(scorer)
    stats = scorer.run()
    print(f"{PROG}: {stats.line(args.topic)} (stopped: {stats.stopped_by})")
    return 130 if stats.stopped_by == "SIGINT" else 0


if __name__ == "__main__":
    run(main, PROG)
