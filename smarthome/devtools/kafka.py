"""A real Apache Kafka 4.x broker (KRaft, single node) without Docker.

The jars come from Maven Central through ``kafka/pom.xml`` (resolved once into ``.cache/``);
the broker is ``java -cp '<jars>/*' kafka.Kafka server.properties``. Ports, data directory and
heap are parameters so tests can run private brokers on free ports next to ``make kafka-up``.

``python -m smarthome.devtools.kafka up|down|status`` is what the Makefile calls.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import functools
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from smarthome.cli import run
from smarthome.devtools.processes import our_process
from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError

if TYPE_CHECKING:
    from smarthome.devtools.kafka_cluster import LocalKafkaCluster

POM = CHECKOUT / "kafka" / "pom.xml"
LOG4J2_CONFIG = CHECKOUT / "kafka" / "log4j2.properties"
DEFAULT_JARS_DIR = CHECKOUT / ".cache" / "kafka-jars"
DEFAULT_DATA_DIR = CHECKOUT / ".run" / "kafka"
STAMP_NAME = ".resolved"  # same stamp file as the Makefile's `jars` target

# Lean JVM flags: a small serial-GC heap starts fast and is plenty for one local broker.
JVM_FLAGS = [
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

SERVER_PROPERTIES = """\
# Written by smarthome/devtools/kafka.py: a KRaft broker+controller for local use.
process.roles=broker,controller
node.id={node_id}
{quorum}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dirs}
num.partitions={num_partitions}
auto.create.topics.enable=true
default.replication.factor={replicas}
min.insync.replicas={min_isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
{failover}"""

#: A replicated cluster fails over in seconds, not Kafka's production defaults (a dead broker
#: is fenced after broker.session.timeout.ms=9 s; a slow follower leaves the ISR after 30 s).
CLUSTER_FAILOVER = """\
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
replica.lag.time.max.ms=10000
controller.quorum.election.timeout.ms=1000
controller.quorum.fetch.timeout.ms=2000
"""


def java_executable() -> str:
    """The java binary, or a one-line UserError saying how to get Java 17."""
    java = shutil.which("java")
    if java is None:
        raise UserError(
            "java not found on PATH; install Java 17 (e.g. `apt install openjdk-17-jre-headless`"
            " or `conda env create -f environment.yml`)"
        )
    return java


def ensure_jars(jars_dir: Path = DEFAULT_JARS_DIR, pom: Path = POM) -> Path:
    """Resolve the Kafka jars from Maven Central once (a stamp file marks success)."""
    stamp = jars_dir / STAMP_NAME
    fresh = stamp.exists() and stamp.stat().st_mtime >= pom.stat().st_mtime
    if fresh and any(jars_dir.glob("kafka_2.13-*.jar")):
        return jars_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise UserError(
            f"the Kafka jars are not in {jars_dir} and mvn is not on PATH; install Maven"
            " (e.g. `apt install maven`) and run `make jars`"
        )
    jars_dir.mkdir(parents=True, exist_ok=True)
    for old in jars_dir.glob("*.jar"):  # a version bump must not leave two Kafka versions
        old.unlink()
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={jars_dir}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"mvn could not resolve the Kafka jars from {pom}: {last[0]}")
    stamp.touch()
    return jars_dir


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in Kafka's URL-safe base64 form (22 chars).

    Like Kafka's own ``Uuid.randomUuid``, never one starting with "-" (it reads as a flag).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _tail(path: Path, lines: int = 5) -> str:
    """The root cause if the log names one (the first 'Caused by'/ERROR line), else its end."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    causes = [line for line in text if line.startswith("Caused by:")]
    if causes:
        return causes[-1].strip()
    errors = [line for line in text if " ERROR " in line]
    return " | ".join(line.strip() for line in (errors[:1] or text[-lines:]))


def _parent_death_signal() -> Callable[[], object] | None:
    """A pre-exec hook making Linux SIGTERM the child when its parent dies (PR_SET_PDEATHSIG).

    prctl is looked up here, in the parent, so the forked child only makes one C call (no
    dlopen or imports between fork and exec, which is what makes pre-exec hooks risky).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: tests then rely on fixture teardown alone
    return functools.partial(prctl, 1, int(signal.SIGTERM))


@dataclass(frozen=True)
class Quorum:
    """How a node finds its KRaft controllers: alone (``--standalone``) or a static voter set.

    A cluster's nodes share one cluster id and one voter list, and their topics are
    replicated to every node with at least two in sync (``replicas``/``min_isr``).
    """

    voters: str = ""  # "1@127.0.0.1:9093,2@..." for a cluster; empty for a single node
    cluster_id: str = ""
    replicas: int = 1
    min_isr: int = 1


class LocalKafka:
    """One local KRaft broker+controller process with its own data dir, ports and log."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap_mb: int = 512,
        num_partitions: int = 1,
        jars_dir: Path = DEFAULT_JARS_DIR,
        die_with_parent: bool = False,
        node_id: int = 1,
        quorum: Quorum = Quorum(),  # noqa: B008 - frozen, so sharing the default is safe
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self.num_partitions = num_partitions
        self.node_id = node_id
        self.quorum = quorum
        self.jars_dir = Path(jars_dir)
        self.bootstrap_servers = f"127.0.0.1:{port}"
        self.log_file = self.data_dir.parent / "logs" / f"{self.data_dir.name}.log"
        self.pid_file = self.data_dir / "kafka.pid"
        self.properties = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "kraft-logs"
        self.die_with_parent = die_with_parent  # tests: no orphan broker if pytest is killed
        self._proc: subprocess.Popen[bytes] | None = None

    # -- process bookkeeping -------------------------------------------------------------
    def _process(self) -> psutil.Process | None:
        """Our broker process (from Popen or the pid file), if it is alive and really ours."""
        return our_process(self._proc, self.pid_file, "kafka.Kafka", self.properties)

    @property
    def pid(self) -> int | None:
        proc = self._process()
        return proc.pid if proc else None

    def is_running(self) -> bool:
        """Whether this broker's own process is alive."""
        return self._process() is not None

    # -- start / stop --------------------------------------------------------------------
    def _java_cmd(self, main_class: str, *args: str, flags: tuple[str, ...] = ()) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{self.heap_mb}m",
            f"-Xms{self.heap_mb}m",
            *JVM_FLAGS,
            *flags,
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            "-cp",
            str(self.jars_dir / "*"),
            main_class,
            *args,
        ]

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            SERVER_PROPERTIES.format(
                node_id=self.node_id,
                quorum=(
                    f"controller.quorum.voters={self.quorum.voters}"
                    if self.quorum.voters
                    else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}"
                ),
                port=self.port,
                controller_port=self.controller_port,
                log_dirs=self.log_dirs,
                num_partitions=self.num_partitions,
                replicas=self.quorum.replicas,
                min_isr=self.quorum.min_isr,
                failover=CLUSTER_FAILOVER if self.quorum.voters else "",
            )
        )

    def _format_storage(self) -> None:
        """Format the KRaft storage once (first start of this data dir)."""
        if (self.log_dirs / "meta.properties").exists():
            return
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            *([] if self.quorum.voters else ["--standalone"]),
            "--ignore-formatted",
            "-t",
            self.quorum.cluster_id or _random_cluster_id(),
            "-c",
            str(self.properties),
            flags=("-XX:TieredStopAtLevel=1",),  # short-lived: C1 only starts ~30% faster
        )
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            out = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"could not format Kafka storage in {self.log_dirs}: {out[0]}")

    def start(self, timeout: float = 90) -> None:
        """Format storage on first start, launch the broker, wait until it answers."""
        if self.is_running():
            return
        self.launch()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Format storage on first start and start the JVM, without waiting for it.

        A cluster launches every node first: a node only answers once a quorum of
        controllers runs, so waiting on the first would wait forever.
        """
        java_executable()
        ensure_jars(self.jars_dir)
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise UserError(
                    f"port {port} on 127.0.0.1 is already in use by another process;"
                    " pick another with --port/--controller-port"
                )
        self._write_config()
        self._format_storage()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.properties)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # survives the `up` command and its terminal's Ctrl-C
                preexec_fn=_parent_death_signal() if self.die_with_parent else None,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def check_alive(self) -> None:
        """UserError with the log's root cause if the JVM we launched has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            raise UserError(
                f"Kafka exited with code {self._proc.returncode} during start-up;"
                f" log {self.log_file}: {_tail(self.log_file, 2)}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if port_open(self.port) and self.answers():
                return
            time.sleep(0.2)
        raise UserError(f"Kafka did not answer within {timeout:.0f} s; see {self.log_file}")

    def answers(self, brokers: int = 1) -> bool:
        """Whether the broker answers a metadata request listing at least ``brokers`` brokers.

        A broker is listed only once the active controller has registered and unfenced it,
        so N listed brokers also means a controller leader has been elected.
        """
        from kafka import KafkaAdminClient

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                request_timeout_ms=5000,
                bootstrap_timeout_ms=3000,
                client_id="smarthome-kafka-local",
            )
        except Exception:
            return False
        try:
            listed = admin.describe_cluster().get("brokers") or []
            return len(listed) >= brokers and admin.list_topics() is not None
        except Exception:
            return False
        finally:
            admin.close()

    def kill(self) -> None:
        """SIGKILL this broker (fault tests): no clean shutdown, no controlled leader move."""
        proc = self._process()
        if proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                proc.wait(10)
        self.stop()  # reaps the child and removes the pid file

    def stop(self, timeout: float = 30) -> None:
        """Stop only this broker's process: SIGTERM, wait, SIGKILL fallback."""
        proc = self._process()
        if proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)  # reap our child so it is no zombie
            self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()


# -- command line (make kafka-up / kafka-down / kafka-status) ----------------------------
def _broker_from_args(args: argparse.Namespace) -> LocalKafka:
    return LocalKafka(
        data_dir=args.data_dir,
        port=args.port,
        controller_port=args.controller_port or args.port + 1,
        heap_mb=args.heap_mb,
        num_partitions=args.partitions,
    )


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
    args = parser.parse_args(argv)
    for name in ("port", "partitions", "brokers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    from smarthome.devtools.kafka_cluster import DEFAULT_CLUSTER_DIR, LocalKafkaCluster

    if args.brokers > 1:
        data_dir = args.data_dir or DEFAULT_CLUSTER_DIR
        cluster = LocalKafkaCluster(
            data_dir, args.port, args.brokers, args.heap_mb or 384, args.partitions
        )
        return _cluster_command(args.command, cluster, explicit_dir=args.data_dir is not None)
    broker = LocalKafka(
        data_dir=args.data_dir or DEFAULT_DATA_DIR,
        port=args.port,
        controller_port=args.controller_port or args.port + 1,
        heap_mb=args.heap_mb or 512,
        num_partitions=args.partitions,
    )
    # `make kafka-down` / `kafka-status` take no --brokers: they also see a default cluster
    cluster = None if args.data_dir else LocalKafkaCluster.existing(DEFAULT_CLUSTER_DIR)
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
    if command == "status":
        if broker.is_running():
            print(f"Kafka is running (pid {broker.pid}) at {broker.bootstrap_servers}")
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
    if broker.is_running():
        print(f"Kafka is already running (pid {broker.pid}) at {broker.bootstrap_servers}")
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
    return 0


def _cluster_command(command: str, cluster: LocalKafkaCluster, explicit_dir: bool) -> int:
    from smarthome.devtools.kafka_cluster import status_lines

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
    if len(cluster.running()) == size:
        print(f"the Kafka cluster is already running ({size} nodes) at {cluster.bootstrap_servers}")
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
    return 0


if __name__ == "__main__":
    run(main, "kafka_local")
