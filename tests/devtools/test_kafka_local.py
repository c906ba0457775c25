"""The local Kafka broker: `up`/`down`/`status` on free ports and clean stops.

(Restarts keeping data: tests/ingest/test_producer_restart.py, with a producer running.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from smarthome.devtools import kafka_jars
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port
from smarthome.errors import UserError
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def kafka_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smarthome.devtools.kafka", *args],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )


def brokers_for(data_dir: Path) -> list[psutil.Process]:
    """Java processes running kafka.Kafka with this data dir's server.properties."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "kafka.Kafka" in cmdline and any(str(data_dir) in part for part in cmdline):
            found.append(proc)
    return found


@pytest.mark.kafka
@pytest.mark.slow
def test_cli_up_again_status_down_leaves_no_java(tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH)")
    data_dir = tmp_path / "kafka"
    flags = ["--port", str(free_port()), "--controller-port", str(free_port())]
    flags += ["--data-dir", str(data_dir)]
    try:
        up = kafka_cli("up", *flags)
        assert up.returncode == 0, up.stderr
        assert "Kafka is up" in up.stdout and str(tmp_path / "logs") in up.stdout
        assert len(brokers_for(data_dir)) == 1
        assert (data_dir / "kafka.pid").exists()

        again = kafka_cli("up", *flags)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert len(brokers_for(data_dir)) == 1

        status = kafka_cli("status", *flags)
        assert status.returncode == 0 and "is running" in status.stdout

        down = kafka_cli("down", *flags)
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        assert brokers_for(data_dir) == []
        assert not (data_dir / "kafka.pid").exists()

        status = kafka_cli("status", *flags)
        assert status.returncode == 0 and "not running" in status.stdout
    finally:
        for proc in brokers_for(data_dir):  # never leave a broker behind, even on failure
            proc.kill()


@pytest.mark.kafka
@pytest.mark.slow
def test_cli_three_node_cluster_up_status_down_leaves_no_java(tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH)")
    from smarthome.devtools.ports import free_base_port

    data_dir = tmp_path / "cluster"
    base = free_base_port(3)
    flags = ["--brokers", "3", "--port", str(base), "--data-dir", str(data_dir)]
    try:
        up = kafka_cli("up", *flags, "--partitions", "6")
        assert up.returncode == 0, up.stderr
        assert "Kafka cluster is up (3 nodes, replication 3, min.insync.replicas 2)" in up.stdout
        assert len(brokers_for(data_dir)) == 3
        bootstrap = ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(3))
        assert bootstrap in up.stdout

        again = kafka_cli("up", *flags)
        assert again.returncode == 0 and "already running (3 nodes)" in again.stdout

        # a topic created with the broker defaults is replicated to all three
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
        try:
            admin.create_topics([NewTopic("replicated", 6, -1)])
            # the controller has created it; the broker asked may learn of it a moment later
            deadline = time.monotonic() + 30
            while True:
                parts = admin.describe_topics(["replicated"])[0]["partitions"]
                if len(parts) == 6 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert len(parts) == 6 and all(len(p["replica_nodes"]) == 3 for p in parts)
        finally:
            admin.close()

        status = kafka_cli("status", *flags)
        assert status.returncode == 0, status.stderr
        for node in (1, 2, 3):
            assert f"node {node} at 127.0.0.1:{base + 2 * (node - 1)}: running" in status.stdout
        assert "topic replicated: partition->leader 0->" in status.stdout, status.stdout

        down = kafka_cli("down", *flags)
        assert down.returncode == 0 and "3 of 3 nodes were running" in down.stdout
        assert brokers_for(data_dir) == []
        status = kafka_cli("status", *flags)
        assert status.stdout.count("not running") == 3, status.stdout
    finally:
        for proc in brokers_for(data_dir):
            proc.kill()


ORPHAN_SCRIPT = """
import os, sys
from pathlib import Path
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port
broker = LocalKafka(Path(sys.argv[1]), port=free_port(), controller_port=free_port(),
                    die_with_parent=True)
broker.start()
print(broker.pid, flush=True)
os._exit(0)  # dies without stopping the broker, like a killed test run
"""


@pytest.mark.kafka
@pytest.mark.slow
def test_test_broker_dies_with_its_parent(tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH)")
    data_dir = tmp_path / "kafka"
    result = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(data_dir)],
        capture_output=True, text=True, timeout=150, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[0])
    try:
        psutil.Process(pid).wait(timeout=30)  # gone by itself, after a clean SIGTERM
    except psutil.NoSuchProcess:
        pass
    finally:
        for proc in brokers_for(data_dir):
            proc.kill()
    assert brokers_for(data_dir) == []


def test_missing_java_or_maven_is_a_user_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="java not found on PATH"):
        LocalKafka(tmp_path / "k", port=free_port()).start()
    with pytest.raises(UserError, match="mvn is not on PATH"):
        kafka_jars.ensure_jars(tmp_path / "jars")


def test_port_in_use_is_a_user_error(tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH)")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        with pytest.raises(UserError, match=f"port {busy} .* already in use"):
            LocalKafka(tmp_path / "k", port=busy, controller_port=free_port()).start()
