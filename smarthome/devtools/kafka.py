"""The command line of the local Kafka: ``python -m smarthome.devtools.kafka up|down|status``.

What the Makefile's ``kafka-up``/``kafka-down``/``kafka-status`` call: one broker
(``local_kafka``) or, with ``--brokers N``, a replicated cluster (``kafka_cluster``); with
``--secure`` (``SECURE=1``) one that takes only SASL_SSL logins (``kafka_security``), whose
clients' properties files ``up`` also puts in ``.run/kafka-secure/`` when it uses the default
data dir. ``down`` and ``status`` see from the data dir whether a broker was secured.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from smarthome.cli import run
from smarthome.devtools.kafka_cluster import (
    DEFAULT_CLUSTER_DIR,
    LocalKafkaCluster,
    secured_line,
    status_lines,
)
from smarthome.devtools.kafka_security import CLIENT_CONFIG_DIR
from smarthome.devtools.local_kafka import DEFAULT_DATA_DIR, LocalKafka, formatted_secure
from smarthome.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smarthome.devtools.kafka",
        description="Start/stop a local Apache Kafka broker or cluster (KRaft, no Docker).",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    parser.add_argument(
        "--controller-port", type=int, default=0, help="KRaft controller port (default port+1)"
    )
    parser.add_argument(
        "--brokers",
        type=int,
        default=1,
        help="nodes: 1 (default) or a replicated cluster, node i on ports port+2i, port+2i+1",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data dir; also holds the pid files (default {DEFAULT_DATA_DIR}, or"
        f" {DEFAULT_DATA_DIR.parent / 'kafka-cluster'} with --brokers > 1)",
    )
    parser.add_argument("--partitions", type=int, default=1, help="num.partitions (default 1)")
    parser.add_argument("--heap-mb", type=int, default=0, help="JVM heap in MB per node")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for start")
    parser.add_argument(
        "--secure",
        action="store_true",
        help="up: TLS, SCRAM-SHA-512 logins and ACLs only (no plaintext listener); client"
        f" properties in {CLIENT_CONFIG_DIR}/<principal>.properties",
    )
    args = parser.parse_args(argv)
    for name in ("port", "partitions", "brokers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    # the stages' copy of the properties files is for the default Kafka, not a private one
    published = None if args.data_dir else CLIENT_CONFIG_DIR
    if args.brokers > 1:
        data_dir = args.data_dir or DEFAULT_CLUSTER_DIR
        secure = args.secure
        if args.command != "up":  # as it was made
            secure = bool((LocalKafkaCluster.layout(data_dir) or {}).get("secure"))
        cluster = LocalKafkaCluster(
            data_dir,
            args.port,
            args.brokers,
            args.heap_mb or 384,
            args.partitions,
            secure=secure,
            client_config_dir=published,
        )
        return _cluster_command(args.command, cluster, explicit_dir=args.data_dir is not None)
    data_dir = args.data_dir or DEFAULT_DATA_DIR
    broker = LocalKafka(
        data_dir=data_dir,
        port=args.port,
        controller_port=args.controller_port or args.port + 1,
        heap_mb=args.heap_mb or 512,
        num_partitions=args.partitions,
        secure=args.secure if args.command == "up" else bool(formatted_secure(data_dir)),
        client_config_dir=published,
    )
    # `make kafka-down` / `kafka-status` take no --brokers: they also see a default cluster
    cluster = None if args.data_dir else LocalKafkaCluster.existing(DEFAULT_CLUSTER_DIR, published)
    if args.command != "up" and cluster is not None and cluster.is_running():
        if broker.is_running():
            _broker_command(args.command, broker)
        return _cluster_command(args.command, cluster, explicit_dir=False)
    if args.command == "up" and cluster is not None and cluster.is_running():
        raise UserError(
            f"a local Kafka cluster already runs at {cluster.bootstrap_servers};"
            " use it, or stop it first with `make kafka-down`"
        )
    return _broker_command(args.command, broker)


def _broker_command(command: str, broker: LocalKafka) -> int:
    secured = secured_line(broker.client_properties("admin").parent) if broker.secure else ""
    if command == "status":
        if broker.is_running():
            print(f"Kafka is running (pid {broker.pid}) at {broker.bootstrap_servers}")
            if secured:
                print(secured)
        else:
            print(f"Kafka is not running (data dir {broker.data_dir})")
        return 0
    if command == "down":
        if not broker.is_running():
            print(f"Kafka is not running (data dir {broker.data_dir})")
            return 0
        pid = broker.pid
        broker.stop()
        print(f"Kafka stopped (pid {pid})")
        return 0
    broker.check_security()  # `up --secure` on a plaintext one (or back) says what to do
    if broker.is_running():
        print(f"Kafka is already running (pid {broker.pid}) at {broker.bootstrap_servers}")
        if secured:
            print(secured)
        return 0
    started = time.monotonic()
    broker.start()
    stop = "make kafka-down"
    if broker.data_dir != DEFAULT_DATA_DIR.resolve():
        stop = f"python -m smarthome.devtools.kafka down --data-dir {broker.data_dir}"
    print(
        f"Kafka is up (pid {broker.pid}) at {broker.bootstrap_servers} after"
        f" {time.monotonic() - started:.1f} s; log: {broker.log_file}; stop it with `{stop}`"
    )
    if secured:
        print(secured)
    return 0


def _cluster_command(command: str, cluster: LocalKafkaCluster, explicit_dir: bool) -> int:
    size = len(cluster.nodes)
    if command == "status":
        print("\n".join(status_lines(cluster)))
        return 0
    if command == "down":
        running = cluster.running()
        if not running:
            print(f"the Kafka cluster is not running (data dir {cluster.data_dir})")
            return 0
        cluster.stop()
        print(f"Kafka cluster stopped ({len(running)} of {size} nodes were running)")
        return 0
    secured = secured_line(cluster.client_properties("admin").parent) if cluster.secure else ""
    if len(cluster.running()) == size:
        print(f"the Kafka cluster is already running ({size} nodes) at {cluster.bootstrap_servers}")
        if secured:
            print(secured)
        return 0
    started = time.monotonic()
    cluster.start()
    stop = "make kafka-down"
    if explicit_dir:
        stop = "python -m smarthome.devtools.kafka down"
        stop += f" --brokers {size} --data-dir {cluster.data_dir}"
    print(
        f"Kafka cluster is up ({size} nodes, replication {cluster.nodes[0].quorum.replicas},"
        f" min.insync.replicas {cluster.nodes[0].quorum.min_isr}) at"
        f" {cluster.bootstrap_servers} after {time.monotonic() - started:.1f} s;"
        f" logs: {cluster.data_dir / 'logs'}; stop it with `{stop}`"
    )
    if secured:
        print(secured)
    return 0


if __name__ == "__main__":
    run(main, "kafka_local")
