"""A real Apache Kafka 4.x broker (KRaft, combined broker+controller) without Docker.

The broker is ``java -cp '<jars>/*' kafka.Kafka server.properties`` on the jars that
``kafka_jars`` resolves from Maven. Ports, data directory and heap are parameters so tests
can run private brokers on free ports next to ``make kafka-up``; a ``Quorum`` makes the node
one of a replicated cluster (``kafka_cluster``). ``secure=True`` makes it a broker clients
reach only over TLS with a SCRAM login and ACLs (``kafka_security``, which also describes
its listeners); the default is plaintext.

``host`` and ``launcher`` run a plaintext node elsewhere than on 127.0.0.1 of this network
namespace: it binds and advertises ``host`` and is started as ``launcher + java ...`` (e.g.
``["ip", "netns", "exec", "<ns>"]``, see ``netns``). Such a node is ready once its log says
"Kafka Server started" after this launch (which a broker logs once the active controller has
registered and unfenced it): the kafka-python checks run from here and cannot reach an
address in another namespace.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from smarthome.devtools.java import java_executable, log_cause
from smarthome.devtools.kafka_jars import DEFAULT_JARS_DIR, ensure_jars
from smarthome.devtools.kafka_security import (
    PRINCIPALS,
    admin_client_settings,
    ensure_material,
    hide_passwords,
    java_argument_file,
    prepare_clients,
    properties_file,
    scram_format_args,
    server_listeners,
    write_private,
)
from smarthome.devtools.ports import port_open
from smarthome.devtools.processes import forget_process, our_process, parent_death_signal
from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError

LOG4J2_CONFIG = CHECKOUT / "kafka" / "log4j2.properties"
DEFAULT_DATA_DIR = CHECKOUT / ".run" / "kafka"

# Lean JVM flags: a small serial-GC heap starts fast and is plenty for one local broker.
JVM_FLAGS = [
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

SERVER_PROPERTIES = """\
# Written by smarthome/devtools/local_kafka.py: a KRaft broker+controller for local use.
process.roles=broker,controller
node.id={node_id}
{quorum}
{listeners}log.dirs={log_dirs}
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

#: The listeners of a plaintext node (a secured node's: ``kafka_security.server_listeners``).
PLAINTEXT_LISTENERS = """\
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""

#: A replicated cluster fails over in seconds, not Kafka's production defaults (a dead broker
#: is fenced after broker.session.timeout.ms=9 s; a slow follower leaves the ISR after 30 s).
CLUSTER_FAILOVER = """\
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
replica.lag.time.max.ms=10000
controller.quorum.election.timeout.ms=1000
controller.quorum.fetch.timeout.ms=2000
"""


#: in a data dir formatted for a secured broker (its SCRAM users are in the formatted metadata)
SECURE_MARKER = "formatted-secure"


def formatted_secure(data_dir: Path) -> bool | None:
    """Whether the storage in ``data_dir`` was formatted for a secured broker; None if it
    was never formatted."""
    data_dir = Path(data_dir)
    if not (data_dir / "kraft-logs" / "meta.properties").exists():
        return None
    return (data_dir / SECURE_MARKER).exists()


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in Kafka's URL-safe base64 form (22 chars).

    Like Kafka's own ``Uuid.randomUuid``, never one starting with "-" (it reads as a flag).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


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
        secure: bool = False,
        secure_dir: Path | None = None,
        client_config_dir: Path | None = None,
        host: str = "127.0.0.1",
        launcher: list[str] | None = None,
    ) -> None:
        if secure and (host != "127.0.0.1" or launcher):
            raise ValueError("a secured node listens on 127.0.0.1 only (its certificate's name)")
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.launcher = list(launcher or [])  # a command prefix, e.g. `ip netns exec <ns>`
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self.num_partitions = num_partitions
        self.node_id = node_id
        self.quorum = quorum
        self.jars_dir = Path(jars_dir)
        self.bootstrap_servers = f"{host}:{port}"
        self.log_file = self.data_dir.parent / "logs" / f"{self.data_dir.name}.log"
        self.pid_file = self.data_dir / "kafka.pid"
        self.properties = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "kraft-logs"
        self.die_with_parent = die_with_parent  # tests: no orphan broker if pytest is killed
        self.secure = secure
        # TLS material, passwords, properties files; a cluster's nodes share one folder
        self.secure_dir = Path(secure_dir).resolve() if secure_dir else self.data_dir / "secure"
        # where the stages find each principal's properties (a copy outside the secure folder)
        self.client_config_dir = Path(client_config_dir).resolve() if client_config_dir else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # the log's size at launch: later lines are this run's

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
            # extra JVM options, as Kafka's own start scripts take them
            *shlex.split(os.environ.get("KAFKA_OPTS", "")),
            *flags,
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            "-cp",
            str(self.jars_dir / "*"),
            main_class,
            *args,
        ]

    def client_settings(self) -> dict[str, Any]:
        """The kafka-python keyword arguments of the devtools' own clients: none for a
        plaintext broker, admin's login over SASL_SSL for a secured one."""
        return admin_client_settings(self.secure_dir) if self.secure else {}

    def client_properties(self, principal: str) -> Path:
        """The properties file that logs a client in to this secured broker as ``principal``."""
        if not self.secure:
            raise UserError(f"the Kafka in {self.data_dir} is plaintext: it takes no logins")
        if principal not in PRINCIPALS:
            raise ValueError(f"unknown principal {principal!r}; known: {', '.join(PRINCIPALS)}")
        return properties_file(self.client_config_dir or self.secure_dir, principal)

    def check_security(self) -> None:
        """A one-line UserError if the storage was formatted for the other kind of broker:
        a broker cannot be secured (or opened) in place, its SCRAM users are formatted in."""
        formatted = formatted_secure(self.data_dir)
        if formatted is None or formatted == self.secure:
            return
        if formatted:
            raise UserError(
                f"{self.data_dir} holds a secured Kafka: start it with SECURE=1 (--secure), or"
                " stop it (`make kafka-down`) and remove that folder for a plaintext one"
            )
        raise UserError(
            f"{self.data_dir} holds a plaintext Kafka: stop it (`make kafka-down`) and remove"
            " that folder to start a secured one, or start it without SECURE=1 (--secure)"
        )

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            listeners = server_listeners(self.secure_dir, self.port, self.controller_port)
        else:
            listeners = PLAINTEXT_LISTENERS.format(
                host=self.host, port=self.port, controller_port=self.controller_port
            )
        # a secured broker's file holds its inter-broker password: its owner's eyes only
        write = write_private if self.secure else Path.write_text
        write(
            self.properties,
            SERVER_PROPERTIES.format(
                node_id=self.node_id,
                quorum=(
                    f"controller.quorum.voters={self.quorum.voters}"
                    if self.quorum.voters
                    else f"controller.quorum.bootstrap.servers={self.host}:{self.controller_port}"
                ),
                listeners=listeners,
                log_dirs=self.log_dirs,
                num_partitions=self.num_partitions,
                replicas=self.quorum.replicas,
                min_isr=self.quorum.min_isr,
                failover=CLUSTER_FAILOVER if self.quorum.voters else "",
            ),
        )

    def _format_storage(self) -> None:
        """Format the KRaft storage once (first start of this data dir)."""
        if (self.log_dirs / "meta.properties").exists():
            return
        args = [
            *([] if self.quorum.voters else ["--standalone"]),
            "--ignore-formatted",
            "-t",
            self.quorum.cluster_id or random_cluster_id(),
            "-c",
            str(self.properties),
        ]
        flags = ("-XX:TieredStopAtLevel=1",)  # short-lived: C1 only starts ~30% faster
        marker = self.data_dir / SECURE_MARKER
        if not self.secure:
            marker.unlink(missing_ok=True)
            cmd = self._java_cmd("kafka.tools.StorageTool", "format", *args, flags=flags)
            result = subprocess.run(cmd, capture_output=True, text=True)
        else:
            marker.touch()  # before: storage that exists was formatted with it
            # the SCRAM users' passwords go in an argument file, never on the command line
            words = ["kafka.tools.StorageTool", "format", *scram_format_args(self.secure_dir)]
            with java_argument_file(self.secure_dir, words) as argfile:
                cmd = self._java_cmd(f"@{argfile}", *args, flags=flags)
                result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            out = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            cause = hide_passwords(out[0], self.secure_dir) if self.secure else out[0]
            raise UserError(f"could not format Kafka storage in {self.log_dirs}: {cause}")

    def start(self, timeout: float = 90) -> None:
        """Format storage on first start, launch the broker, wait until it answers."""
        if self.is_running():
            return
        self.launch()
        try:
            self._wait_ready(timeout)
            if self.secure and not self.quorum.voters:  # a cluster's are the cluster's to make
                prepare_clients(self.secure_dir, self.bootstrap_servers, self.client_config_dir)
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
        self.check_security()
        for port in () if self.launcher else (self.port, self.controller_port):
            if port_open(port):
                raise UserError(
                    f"port {port} on 127.0.0.1 is already in use by another process;"
                    " pick another with --port/--controller-port"
                )
        if self.secure:
            ensure_material(self.secure_dir)
        self._write_config()
        self._format_storage()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                [*self.launcher, *self._java_cmd("kafka.Kafka", str(self.properties))],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # survives the `up` command and its terminal's Ctrl-C
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def check_alive(self) -> None:
        """UserError with the log's root cause if the JVM we launched has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            raise UserError(
                f"Kafka exited with code {self._proc.returncode} during start-up;"
                f" log {self.log_file}: {log_cause(self.log_file, 2)}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready():
                return
            time.sleep(0.2)
        raise UserError(f"Kafka did not answer within {timeout:.0f} s; see {self.log_file}")

    def ready(self, brokers: int = 1) -> bool:
        """Whether the broker is up: it answers (``answers``), or for a launched node in
        another namespace, its log says it started after this launch (``started``)."""
        if self.launcher:
            return self.started()
        return port_open(self.port) and self.answers(brokers)

    #: what a broker logs once it runs (registered and unfenced by the active controller)
    STARTED_LINE = b"Kafka Server started"

    def started(self) -> bool:
        """Whether the log says this broker started since ``launch``."""
        with contextlib.suppress(OSError), open(self.log_file, "rb") as log:
            log.seek(self._log_offset)
            return self.STARTED_LINE in log.read()
        return False

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
                **self.client_settings(),
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
        forget_process(self._proc, self.pid_file)
        self._proc = None
