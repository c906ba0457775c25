"""``make demo``: the whole pipeline live on one machine, stopped cleanly by Ctrl-C.

Starts (or reuses) a Kafka broker, then the producer, the consumer in ``--follow`` mode,
``spark_training.py --watch``, the stream scorer (``kafka_stream_predict.py --follow``: every
record's predictions on smart_home_predictions once a model set exists), the API and the UI,
each logging to ``logs/<stage>.log``. Running it again resumes: the topic keeps its records,
the consumer and the scorer their offsets, the trainer trains only the missing sets.
``make clean`` starts over.

``--secure`` (``make demo SECURE=1``) starts the local broker or cluster secured
(``kafka_security``: SASL_SSL, SCRAM logins, ACLs) and logs each stage in as its own
principal with ``--kafka-config``: the producer as producer, the consumer as consumer, the
scorer as scorer, the API as viewer; training and the UI do not talk to Kafka and get no
login. The demo's own look at the topic logs in as admin.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from smarthome.cli import add_kafka_config_flag, run
from smarthome.config import DEFAULTS
from smarthome.contracts.api import StatusResponse, read_response
from smarthome.devtools.supervisor import Stage, Supervisor
from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError
from smarthome.kafka_settings import (
    ENV,
    bootstrap_servers,
    client_settings,
    current,
    kafka_config_in_force,
    not_connected,
    use_kafka_config,
)


class Timeline:
    """Seconds since the demo started, for the benchmark's split of where the time goes."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.marks: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        elapsed = time.monotonic() - self.start
        self.marks.append((what, elapsed))
        print(f"[demo {elapsed:6.1f}s] {what}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=CHECKOUT,
        help="where batched_data/, "
        "spark_models/, logs/ and the broker's data live (default: the repo)",
    )
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument(
        "--kafka-controller-port",
        type=int,
        default=0,
        help="the local broker's KRaft controller port (default: kafka port + 1)",
    )
    parser.add_argument(
        "--brokers",
        type=int,
        default=1,
        help="local Kafka nodes: 1, or a replicated cluster (3: replication 3, min ISR 2)"
        " on ports kafka-port+2i",
    )
    parser.add_argument("--api-port", type=int, default=5000)
    parser.add_argument("--ui-port", type=int, default=8501)
    parser.add_argument(
        "--rate",
        type=float,
        default=300,
        help="producer records/s (0 = as fast as possible; default 300)",
    )
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also start Prometheus (Debian's prometheus package) scraping every stage",
    )
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        help="log every set trained into this MLflow store (make demo MLFLOW=1; make mlflow "
        "shows it)",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--max-batch-age", type=float, default=5)
    parser.add_argument(
        "--spark-workers",
        type=int,
        default=0,
        help="train on a local Spark standalone cluster of N workers (default 0: local mode)",
    )
    parser.add_argument("--spark-port", type=int, default=7077, help="with --spark-workers")
    parser.add_argument("--spark-ui-port", type=int, default=8080, help="with --spark-workers")
    parser.add_argument(
        "--exit-when-trained",
        action="store_true",
        help="stop everything once the API serves a set trained on every record",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="with --exit-when-trained: give up after this many seconds",
    )
    add_kafka_config_flag(
        parser,
        "of a running secured cluster (e.g. `make kafka-up SECURE=1`'s"
        " .run/kafka-secure/admin.properties) that every stage connects with; its"
        " bootstrap.servers (else KAFKA_BOOTSTRAP_SERVERS, else --kafka-port) are the brokers,"
        " and the demo starts none",
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="start the local Kafka secured (TLS, SCRAM logins, ACLs) and log each stage in as"
        " its own principal; the state dir's broker must have been secured from its first"
        " start (make demo SECURE=1)",
    )
    args = parser.parse_args(argv)
    if args.secure and args.kafka_config:
        parser.error("--secure starts a secured Kafka of its own: leave out --kafka-config")
    return args


def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _broker_answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from smarthome.devtools.ports import port_open

    host, _, port = bootstrap.rpartition(":")
    if not port_open(int(port), "127.0.0.1" if host == "localhost" else host):
        return False  # nothing listens: say so now, not after the client's 30 s of retries
    try:
        KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=3000, **client_settings()
        ).close()
        return True
    except (KafkaError, OSError, ValueError):
        return False


def _configured_cluster(bootstrap: str) -> str:
    """The running cluster --kafka-config names, answering; else the one line why not."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    properties = current()
    assert properties is not None
    try:
        KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            request_timeout_ms=3000,
            bootstrap_timeout_ms=10_000,
            **client_settings(),
        ).close()
    except KafkaError as exc:
        otherwise = (
            f"no Kafka broker answers at {bootstrap} as {properties.describe()}; start the"
            " secured one with `make kafka-up SECURE=1`"
        )
        raise UserError(not_connected(exc, bootstrap, otherwise)) from None
    return f"using the Kafka cluster at {bootstrap}: {properties.describe()}"


class Broker:
    """The demo's Kafka: one already running, Docker Compose, or a local one it starts.

    A ``secure`` one is always a local broker or cluster the demo starts (or finds running
    from its data dir): only then does it know the logins."""

    def __init__(
        self,
        port: int,
        controller_port: int,
        data_dir: Path,
        brokers: int = 1,
        secure: bool = False,
    ) -> None:
        self.bootstrap = ",".join(f"localhost:{port + 2 * i}" for i in range(brokers))
        self.brokers = brokers
        self.port = port
        self.controller_port = controller_port or port + 1
        self.data_dir = data_dir
        self.secure = secure
        self.local: Any = None  # a LocalKafka or LocalKafkaCluster the demo started
        self.compose = False

    def login(self, principal: str) -> Path | None:
        """The properties file that logs in to the secured local Kafka as ``principal``;
        None for a plaintext one (a stage then connects as KAFKA_CONFIG says)."""
        return self.local.client_properties(principal) if self.secure else None

    def start(self) -> str:
        secured = " (secured: SASL_SSL, SCRAM logins, ACLs)" if self.secure else ""
        if not self.secure and _broker_answers(self.bootstrap.split(",")[0]):
            return f"using the Kafka broker already at {self.bootstrap}"
        if self.brokers > 1:
            from smarthome.devtools.kafka_cluster import LocalKafkaCluster

            self.local = LocalKafkaCluster(
                self.data_dir.parent / "kafka-cluster", self.port, self.brokers,
                secure=self.secure,
            )  # fmt: skip
            self.local.start()
            nodes = f"{self.brokers}-node"
            return f"started a local {nodes} Kafka cluster at {self.bootstrap}{secured}"
        if self.port == 9092 and not self.secure and _docker_engine_answers():
            subprocess.run(["docker", "compose", "up", "-d"], cwd=CHECKOUT, check=True)
            self.compose = True
            self._wait(120)
            return f"started Kafka with Docker Compose at {self.bootstrap}"
        from smarthome.devtools.local_kafka import LocalKafka

        self.local = LocalKafka(
            self.data_dir, port=self.port, controller_port=self.controller_port,
            secure=self.secure,
        )  # fmt: skip
        self.local.start()
        return (
            f"started a local Kafka broker at {self.bootstrap}{secured} (data in {self.data_dir})"
        )

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _broker_answers(self.bootstrap.split(",")[0]):
            if time.monotonic() > deadline:
                raise UserError(f"Kafka did not answer at {self.bootstrap} within {timeout:.0f}s")
            time.sleep(1)

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
        if self.compose:
            subprocess.run(["docker", "compose", "down"], cwd=CHECKOUT, check=False)


def records_in_topic(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), **client_settings())
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def served_set(api_url: str) -> tuple[str, int] | None:
    """The model set the API serves now and how many rows it was trained on."""
    try:
        body = requests.get(f"{api_url}/", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None  # not up yet
    status = read_response(StatusResponse, body, f"GET {api_url}/")
    if status.model_set is None or status.manifest is None:
        return None
    return status.model_set, status.manifest.rows


def check_prediction(api_url: str) -> dict:
    device = {
        "DeviceType": "Smart Speaker",
        "UsageHoursPerDay": 15.3,
        "EnergyConsumption": 1.96,
        "UserPreferences": 1,
        "MalfunctionIncidents": 4,
        "DeviceAgeMonths": 36,
    }
    response = requests.post(f"{api_url}/predict_efficiency", json=device, timeout=5)
    response.raise_for_status()
    return response.json()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # the stages inherit KAFKA_CONFIG: every one connects as the file says (--secure: each
    # logs in to the demo's own secured Kafka as its principal, whatever the env says)
    configured = not args.secure and use_kafka_config(args.kafka_config) is not None
    state = args.state_dir.resolve()
    logs, batch_dir, model_dir = state / "logs", state / "batched_data", state / "spark_models"
    for folder in (logs, batch_dir, model_dir):
        folder.mkdir(parents=True, exist_ok=True)
    topic = DEFAULTS["KAFKA_TOPIC"]
    api_url = f"http://127.0.0.1:{args.api_port}"
    local = ",".join(f"localhost:{args.kafka_port + 2 * i}" for i in range(args.brokers))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers(None, local) if configured else local,
        "KAFKA_TOPIC": topic,
        "BATCH_DIR": str(batch_dir),
        "MODEL_DIR": str(model_dir),
        "API_URL": api_url,
        "PYTHONUNBUFFERED": "1",
    }
    if args.secure:  # no stage inherits a login: those that talk to Kafka are given theirs
        env[ENV] = ""
    py = sys.executable
    clock = Timeline()
    broker = Broker(
        args.kafka_port, args.kafka_controller_port, state / ".run" / "kafka", args.brokers,
        secure=args.secure,
    )  # fmt: skip
    supervisor = Supervisor()
    cluster = _spark_cluster(args, state / ".run" / "spark", env)
    # the demo's own clients' login (--secure: admin's, for the run only; main() may run
    # in-process, so KAFKA_CONFIG is put back as it was)
    own_login = contextlib.ExitStack()

    def stage(name: str, *argv: str, principal: str | None = None) -> Stage:
        login = broker.login(principal) if principal else None
        argv += ("--kafka-config", str(login)) if login else ()
        return supervisor.start(Stage(name, list(argv), logs / f"{name}.log", CHECKOUT, env))

    from smarthome.devtools.ports import free_port
    from smarthome.devtools.prometheus import LocalPrometheus, binary, write_config

    metrics = {"producer": free_port(), "consumer": free_port(), "training": free_port()}
    metrics["scorer"] = free_port()
    metrics["api"] = args.api_port
    scrape_config = write_config(state / ".run" / "prometheus.yml", metrics)
    prometheus = None

    try:
        if configured:  # a cluster the user runs: the demo neither starts nor stops one
            clock.mark(_configured_cluster(env["KAFKA_BOOTSTRAP_SERVERS"]))
        else:
            clock.mark(broker.start())
            own_login.enter_context(kafka_config_in_force(broker.login("admin")))
        if cluster is not None:
            cluster.start()
            clock.mark(
                f"started a Spark master at {cluster.master_url} + {cluster.workers} workers"
            )
        already = records_in_topic(env["KAFKA_BOOTSTRAP_SERVERS"], topic)
        producer = None
        if already:
            clock.mark(f"topic {topic} already holds {already} records: resuming, not re-sending")
        else:
            producer = stage(
                "producer", py, "kafka_producer.py", "--rate", str(args.rate), "--no-progress",
                "--metrics-port", str(metrics["producer"]), principal="producer",
            )  # fmt: skip
        stage(
            "consumer",
            py,
            "kafka_consumer_batch.py",
            "--follow",
            "--no-progress",
            "--batch-size",
            str(args.batch_size),
            "--max-batch-age",
            str(args.max_batch_age),
            "--metrics-port",
            str(metrics["consumer"]),
            principal="consumer",
        )
        master = ["--master", cluster.master_url] if cluster is not None else []
        # keeps up with the stream: each round trains one set on every batch so far, so the
        # API serves the newest data a set later, not after every set in between
        stage(
            "training", py, "spark_training.py", "--watch", "--latest-only", *master,
            "--metrics-port", str(metrics["training"]),
            *(["--mlflow-uri", args.mlflow_uri] if args.mlflow_uri else []),
        )  # fmt: skip
        # waits for the first model set, then scores every record from the topic's start
        stage(
            "scorer", py, "kafka_stream_predict.py", "--follow",
            "--metrics-port", str(metrics["scorer"]), principal="scorer",
        )  # fmt: skip
        stage("api", py, "app_api.py", "--port", str(args.api_port), principal="viewer")
        stage(
            "ui",
            py,
            "-m",
            "streamlit",
            "run",
            "app_ui.py",
            "--server.port",
            str(args.ui_port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        )
        if args.prometheus and binary() is None:
            clock.mark("Prometheus is not installed (`make prometheus`); not starting it")
        elif args.prometheus:
            prometheus = LocalPrometheus(
                scrape_config, args.prometheus_port, state / ".run" / "prometheus-data",
                logs / "prometheus.log",
            )  # fmt: skip
            prometheus.start()
            clock.mark(f"Prometheus at {prometheus.url} scraping {scrape_config}")
        print(
            f"\n  UI:  http://localhost:{args.ui_port}\n  API: {api_url}\n"
            f"  logs: {logs}/<stage>.log      Ctrl-C stops everything.\n",
            flush=True,
        )
        return _watch(args, supervisor, producer, clock, env, topic, already)
    finally:
        if prometheus is not None:
            prometheus.stop()
        supervisor.stop_all()
        if cluster is not None:
            cluster.stop()
        broker.stop()
        own_login.close()
        clock.mark("stopped everything the demo started")


def _spark_cluster(args: argparse.Namespace, folder: Path, env: dict[str, str]):
    """The standalone cluster ``--spark-workers N`` asks for (None: local mode), and its env."""
    if args.spark_workers < 1:
        return None
    from smarthome.devtools.spark import LocalSparkCluster

    env["PYSPARK_PYTHON"] = sys.executable  # the executors' Python
    env["SPARK_LOCAL_IP"] = "127.0.0.1"  # the driver binds 127.0.0.1 like the workers
    return LocalSparkCluster(
        folder, workers=args.spark_workers, port=args.spark_port, ui_port=args.spark_ui_port
    )


def _watch(args, supervisor, producer, clock, env, topic, already) -> int:
    expected = already
    served: str | None = None
    while True:
        time.sleep(0.5)
        if producer is not None and not expected and producer.process.poll() is not None:
            if producer.process.returncode:
                raise UserError(f"the producer failed; see {producer.log_path}")
            expected = records_in_topic(env["KAFKA_BOOTSTRAP_SERVERS"], topic)
            clock.mark(f"producer done: {expected} records in {topic}")
        failed = [s for s in supervisor.failed() if s is not producer]
        if failed:
            raise UserError(f"stage {failed[0].name} stopped; see {failed[0].log_path}")
        newest = served_set(env["API_URL"])
        if newest and newest[0] != served:
            served = newest[0]
            clock.mark(f"API serves model set {newest[0]} trained on {newest[1]} rows")
        if args.exit_when_trained:
            if expected and newest and newest[1] >= expected:
                answer = check_prediction(env["API_URL"])
                clock.mark(f"prediction: {answer}")
                return 0
            if time.monotonic() - clock.start > args.timeout:
                raise UserError(f"no set trained on all records within {args.timeout:.0f}s")


if __name__ == "__main__":
    run(main, "make demo")
