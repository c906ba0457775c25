"""A replicated local Kafka cluster: N combined broker+controller KRaft nodes, no Docker.

Node *i* (0-based) listens on ``port + 2i`` for clients and ``port + 2i + 1`` for the
controller quorum, keeps its data under ``<data_dir>/node<i+1>`` and its log under
``<data_dir>/logs``. Every node shares one cluster id and one static voter list; the
cluster's size, base port and id are kept in ``<data_dir>/cluster.json`` so a restart reuses
the formatted storage and ``down``/``status`` find the nodes again. Topics are replicated to
three nodes with two in sync (``min.insync.replicas=2``), internal topics too, and unclean
leader election is off: a record acknowledged with ``acks=all`` survives the loss of any one
node. Failover settings are in ``local_kafka.CLUSTER_FAILOVER``; ``ports.free_base_port``
picks a free run of ports for tests.

``secure=True`` secures every node as ``kafka_security`` describes, with the same ports: node
*i* takes SASL_SSL clients (and the other nodes' replication) on ``port + 2i`` and its
controller quorum's mutual TLS on ``port + 2i + 1``. The nodes share one CA, broker
certificate and set of passwords in ``<data_dir>/secure``; each principal's properties file
lists every node.

``hosts`` and ``launchers`` (one per node) put each plaintext node at an address of its own,
started through a command prefix, e.g. each in a network namespace of ``netns``; such nodes
are ready once each one's log says it started (``LocalKafka.ready``).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import psutil

from smarthome.devtools.kafka_jars import DEFAULT_JARS_DIR
from smarthome.devtools.kafka_security import MECHANISM, PRINCIPALS, prepare_clients
from smarthome.devtools.local_kafka import LocalKafka, Quorum, random_cluster_id
from smarthome.devtools.ports import port_open
from smarthome.devtools.workspace import RUN_DIR
from smarthome.errors import UserError

DEFAULT_CLUSTER_DIR = RUN_DIR / "kafka-cluster"


class LocalKafkaCluster:
    """N local KRaft nodes started together and stopped together."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        brokers: int = 3,
        heap_mb: int = 384,
        num_partitions: int = 1,
        jars_dir: Path = DEFAULT_JARS_DIR,
        die_with_parent: bool = False,
        secure: bool = False,
        client_config_dir: Path | None = None,
        hosts: list[str] | None = None,
        launchers: list[list[str]] | None = None,
    ) -> None:
        if brokers < 1:
            raise UserError(f"--brokers {brokers}: a cluster needs at least 1 node")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.secure = secure
        self.secure_dir = self.data_dir / "secure"
        self.client_config_dir = Path(client_config_dir).resolve() if client_config_dir else None
        self.layout_file = self.data_dir / "cluster.json"
        hosts = hosts or ["127.0.0.1"] * brokers
        launchers = launchers or [[] for _ in range(brokers)]
        if len(hosts) != brokers or len(launchers) != brokers:
            raise ValueError(f"{brokers} nodes need {brokers} hosts and launchers")
        voters = ",".join(f"{i + 1}@{hosts[i]}:{port + 2 * i + 1}" for i in range(brokers))
        quorum = Quorum(
            voters=voters,
            cluster_id=self._cluster_id(brokers),
            replicas=min(3, brokers),
            min_isr=min(2, brokers),
        )
        self.nodes: list[LocalKafka] = [
            LocalKafka(
                self.data_dir / f"node{i + 1}",
                port=port + 2 * i,
                controller_port=port + 2 * i + 1,
                heap_mb=heap_mb,
                num_partitions=num_partitions,
                jars_dir=jars_dir,
                die_with_parent=die_with_parent,
                node_id=i + 1,
                quorum=quorum,
                secure=secure,
                secure_dir=self.secure_dir,
                client_config_dir=client_config_dir,
                host=hosts[i],
                launcher=launchers[i],
            )
            for i in range(brokers)
        ]
        self.bootstrap_servers = ",".join(node.bootstrap_servers for node in self.nodes)

    @staticmethod
    def layout(data_dir: Path) -> dict[str, Any] | None:
        """What ``cluster.json`` in ``data_dir`` says (size, base port, id, secure), if any."""
        with contextlib.suppress(OSError, ValueError):
            layout = json.loads((Path(data_dir) / "cluster.json").read_text())
            return layout if isinstance(layout, dict) else None
        return None

    @classmethod
    def existing(
        cls, data_dir: Path, client_config_dir: Path | None = None
    ) -> LocalKafkaCluster | None:
        """The cluster once made in ``data_dir`` (its size, ports, security), if there is one."""
        layout = cls.layout(data_dir) or {}
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            secure = bool(layout.get("secure", False))
            return cls(
                data_dir,
                port=int(layout["port"]),
                brokers=int(layout["brokers"]),
                secure=secure,
                client_config_dir=client_config_dir if secure else None,
            )
        return None

    def _cluster_id(self, brokers: int) -> str:
        """The cluster id every node is formatted with, made once per data dir."""
        layout = self.layout(self.data_dir) or {}
        same_place = layout.get("brokers") == brokers and layout.get("port") == self.port
        if same_place and bool(layout.get("secure", False)) == self.secure:
            with contextlib.suppress(KeyError):
                return layout["cluster_id"]
        if any(self.data_dir.glob("node*/kraft-logs/meta.properties")):
            if same_place and self.secure:
                raise UserError(
                    f"{self.data_dir} holds a plaintext Kafka cluster: stop it (`make"
                    " kafka-down`) and remove that folder to start a secured one, or start it"
                    " without SECURE=1 (--secure)"
                )
            if same_place:
                raise UserError(
                    f"{self.data_dir} holds a secured Kafka cluster: start it with SECURE=1"
                    " (--secure), or stop it (`make kafka-down`) and remove that folder for a"
                    " plaintext one"
                )
            raise UserError(
                f"{self.data_dir} holds a Kafka cluster of another size or port; stop it and"
                f" remove the folder (or pick another --data-dir)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = random_cluster_id()
        layout = {"brokers": brokers, "port": self.port, "cluster_id": cluster_id}
        if self.secure:
            layout["secure"] = True  # a plaintext cluster's layout stays as it always was
        self.layout_file.write_text(json.dumps(layout) + "\n")
        return cluster_id

    def client_settings(self) -> dict[str, Any]:
        """The kafka-python keyword arguments of the devtools' own clients (admin's login on
        a secured cluster, none on a plaintext one)."""
        return self.nodes[0].client_settings()

    def client_properties(self, principal: str) -> Path:
        """The properties file that logs a client in to this secured cluster as ``principal``."""
        return self.nodes[0].client_properties(principal)

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def running(self) -> list[LocalKafka]:
        return [node for node in self.nodes if node.is_running()]

    def is_running(self) -> bool:
        return bool(self.running())

    def start(self, timeout: float = 120) -> None:
        """Launch every node that is down, then wait until each lists all N brokers."""
        down = [node for node in self.nodes if not node.is_running()]
        for node in down:
            for port in () if node.launcher else (node.port, node.controller_port):
                if port_open(port):
                    raise UserError(
                        f"port {port} on 127.0.0.1 is already in use by another process;"
                        " pick another base port with --port"
                    )
        try:
            for node in down:
                node.launch()
            self.wait_ready(timeout)
            if self.secure:
                prepare_clients(self.secure_dir, self.bootstrap_servers, self.client_config_dir)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 120, nodes: list[LocalKafka] | None = None) -> None:
        """Until every node (or each of ``nodes``) answers and lists every broker
        (registered, unfenced)."""
        deadline = time.monotonic() + timeout
        waiting = list(nodes or self.nodes)
        while waiting and time.monotonic() < deadline:
            for node in waiting:
                node.check_alive()
            waiting = [n for n in waiting if not n.ready(len(self.nodes))]
            if waiting:
                time.sleep(0.3)
        if waiting:
            names = ", ".join(f"node {n.node_id} ({n.log_file})" for n in waiting)
            raise UserError(f"the Kafka cluster was not ready within {timeout:.0f} s: {names}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every node at once (a node alone would wait for a lost quorum), then wait."""
        procs = []
        for node in self.nodes:
            proc = node._process()
            if proc is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.terminate()
                    procs.append(proc)
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        for node in self.nodes:
            node.stop()  # reaps children, removes pid files

    def describe(self, topics: list[str] | None = None, timeout: float = 30) -> dict[str, dict]:
        """Each topic's partitions (``leader_id``, ``replica_nodes``, ``isr_nodes``) as the
        cluster reports them now, asked of the nodes that listen; retried while a node that
        the metadata still lists is down (the admin client does not try another one)."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        while True:
            listening = [n.bootstrap_servers for n in self.running() if port_open(n.port, n.host)]
            try:
                if not listening:
                    raise UserError("no Kafka node of the cluster is listening")
                admin = KafkaAdminClient(
                    bootstrap_servers=listening,
                    request_timeout_ms=10_000,
                    client_id="smarthome-kafka-cluster",
                    **self.client_settings(),
                )
                try:
                    names = topics or sorted(
                        t for t in admin.list_topics() if not t.startswith("__")
                    )
                    return {
                        t["name"]: {p["partition_index"]: p for p in t["partitions"]}
                        for t in admin.describe_topics(names)
                    }
                finally:
                    admin.close()
            except (KafkaError, UserError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def leaders(self, topics: list[str] | None = None) -> dict[str, dict[int, int]]:
        """Partition leaders per topic (-1: none), as the cluster reports them now."""
        return {
            topic: {index: p["leader_id"] for index, p in partitions.items()}
            for topic, partitions in self.describe(topics).items()
        }

    def wait_fully_replicated(self, topic: str, timeout: float = 180) -> None:
        """Until every partition of ``topic`` has all its replicas in sync again (a node
        restarted after a kill has caught up), so losing any one node loses nothing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            partitions = self.describe([topic]).get(topic, {}).values()
            if partitions and all(
                p["leader_id"] >= 0 and set(p["isr_nodes"]) == set(p["replica_nodes"])
                for p in partitions
            ):
                return
            time.sleep(0.5)
        raise UserError(f"topic {topic} still has replicas out of sync after {timeout:.0f} s")

    def busiest_leader(self, topic: str) -> LocalKafka:
        """The node that leads the most partitions of ``topic`` (the worst one to lose)."""
        leaders = list(self.leaders([topic]).get(topic, {}).values())
        counts = {node.node_id: leaders.count(node.node_id) for node in self.running()}
        return self.node(max(counts, key=lambda node_id: (counts[node_id], -node_id)))


def status_lines(cluster: LocalKafkaCluster) -> list[str]:
    """One line per node (pid or down) and one per topic with its partition leaders."""
    lines = []
    for node in cluster.nodes:
        state = f"running (pid {node.pid})" if node.is_running() else "not running"
        lines.append(f"node {node.node_id} at {node.bootstrap_servers}: {state}")
    if cluster.secure:
        lines.append(secured_line(cluster.client_properties("admin").parent))
    if cluster.is_running():
        try:
            for topic, leaders in sorted(cluster.leaders().items()):
                shown = ", ".join(f"{p}->{leader}" for p, leader in sorted(leaders.items()))
                lines.append(f"topic {topic}: partition->leader {shown}")
        except Exception as exc:  # status must still list the nodes
            lines.append(f"partition leaders unknown: {type(exc).__name__}: {exc}")
    return lines


def secured_line(client_config_dir: Path) -> str:
    """What ``status`` says of a secured Kafka: how clients log in, and where their files are."""
    names = ", ".join(PRINCIPALS)
    return (
        f"secured: SASL_SSL with {MECHANISM} logins and ACLs only; client properties"
        f" ({names}) in {client_config_dir}/<principal>.properties"
    )
