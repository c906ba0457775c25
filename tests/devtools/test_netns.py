"""Hosts of our own in network namespaces (``smarthome.devtools.netns``): reachability, the
faults and their healing, teardown (also of a run killed with SIGKILL), and a 3-node Kafka
cluster with a producer and a consumer each in a namespace of its own.

Needs root, iproute2 and iptables (``make iptables``; the slow link). Marked ``partitions``:
``pytest -m partitions`` runs these and the seeded run of ``test_partitions.py`` alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from smarthome.devtools import netns
from smarthome.devtools.netns import Host, Network
from tests.conftest import require

pytestmark = [pytest.mark.slow, pytest.mark.partitions]

ROOT = Path(__file__).resolve().parents[2]
PORT = 7000

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
"""

CLIENT = """
import socket, sys, time
started = time.monotonic()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
    assert c.recv(2) == b"ok"
print(f"{time.monotonic() - started:.3f}")
"""

UDP_RECEIVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7001))
s.settimeout(2.0)
print("ready", flush=True)
print(s.recv(16).decode())
"""

UDP_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10):
    s.sendto(b"hello", (sys.argv[1], 7001))
    time.sleep(0.05)
"""


@pytest.fixture
def net() -> Iterator[Network]:
    require(
        os.geteuid() == 0 and shutil.which("ip") is not None,
        "root and iproute2's ip (network namespaces)",
    )
    with Network() as network:
        yield network


def start_server(host: Host) -> subprocess.Popen[str]:
    server = host.run([sys.executable, "-c", SERVER, str(PORT)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def connect_seconds(client: Host, server: Host, timeout: float = 1.0) -> float | None:
    """Seconds a TCP connect and reply from ``client`` to ``server`` took; None if it failed."""
    result = subprocess.run(
        [*client.prefix, sys.executable, "-c", CLIENT, server.address, str(PORT), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    return float(result.stdout) if result.returncode == 0 else None


def udp_arrives(sender: Host, receiver: Host) -> bool:
    listening = receiver.run(
        [sys.executable, "-c", UDP_RECEIVER], stdout=subprocess.PIPE, text=True
    )
    assert listening.stdout is not None and listening.stdout.readline().strip() == "ready"
    subprocess.run([*sender.prefix, sys.executable, "-c", UDP_SENDER, receiver.address], timeout=10)
    out, _ = listening.communicate(timeout=10)
    return listening.returncode == 0 and out.strip() == "hello"


def run_names(run_id: str) -> list[str]:
    return [ns for ns in netns.namespaces() if ns.startswith(f"{netns.PREFIX}{run_id}-")]


def root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())


def test_hosts_reach_each_other(net: Network) -> None:
    a, b = net.add_host("a"), net.add_host("b")
    assert (a.address, b.address) == ("10.77.0.1", "10.77.0.2")
    start_server(a)
    start_server(b)
    assert connect_seconds(a, b) is not None
    assert connect_seconds(b, a) is not None


def test_isolate_blocks_both_ways_and_heal_restores(net: Network) -> None:
    a, b, c = (net.add_host(name) for name in "abc")
    for host in (a, b, c):
        start_server(host)
    net.isolate(a, [b])
    tried = time.monotonic()
    assert connect_seconds(a, b) is None
    assert time.monotonic() - tried >= 1.0  # silently dropped: the 1 s connect timeout ran out
    assert connect_seconds(b, a) is None
    assert connect_seconds(a, c) is not None  # only the named peers are cut off
    assert connect_seconds(c, b) is not None
    net.heal(a)
    assert connect_seconds(a, b) is not None
    assert connect_seconds(b, a) is not None


def test_one_way_blocks_only_the_hosts_sends(net: Network) -> None:
    a, b = net.add_host("a"), net.add_host("b")
    net.one_way(a, [b])
    assert udp_arrives(b, a)  # a still receives from b
    assert not udp_arrives(a, b)  # what a sends to b is lost
    net.heal(a)
    assert udp_arrives(a, b)


def test_slow_adds_measurable_delay(net: Network) -> None:
    a, b = net.add_host("a"), net.add_host("b")
    start_server(b)
    before = connect_seconds(a, b)
    assert before is not None and before < 0.1
    require(shutil.which("iptables") is not None, "iptables (apt-get install iptables)")
    net.slow(a, delay_ms=200, loss_pct=0)
    slowed = connect_seconds(a, b, timeout=5)
    # a connect and a reply are two round trips; each crosses a's link twice (200 ms each way)
    assert slowed is not None and slowed >= 0.75, slowed
    assert net.unslow(a).endswith("delayed by 200 ms, dropped 0")
    after = connect_seconds(a, b)
    assert after is not None and after < 0.1


UDP_COUNTER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7002))
s.settimeout(3.0)
print("ready", flush=True)
got = 0
try:
    while True:
        s.recv(16)
        got += 1
except TimeoutError:
    print(got)
"""


def test_slow_drops_the_seeded_share_of_packets(net: Network) -> None:
    require(shutil.which("iptables") is not None, "iptables (apt-get install iptables)")
    a, b = net.add_host("a"), net.add_host("b")
    net.slow(a, delay_ms=10, loss_pct=20, seed=3)
    counter = a.run([sys.executable, "-c", UDP_COUNTER], stdout=subprocess.PIPE, text=True)
    assert counter.stdout is not None and counter.stdout.readline().strip() == "ready"
    sender = "import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
    sender += f"for _ in range(1000):\n s.sendto(b'x',('{a.address}',7002))\n time.sleep(0.001)"
    b.run([sys.executable, "-c", sender]).wait(30)
    received = int(counter.communicate(timeout=30)[0])
    counts = net.unslow(a)
    dropped = int(counts.split()[-1])
    # about a fifth of the 1,000 lost (binomial: 200 +- 13); the link's own count agrees
    assert 140 <= 1000 - received <= 260, received
    assert dropped == 1000 - received, counts


def test_an_attached_network_heals_what_it_broke_and_leaves_the_hosts(net: Network) -> None:
    a, b = net.add_host("a"), net.add_host("b")
    start_server(b)
    other = Network.attach(net.describe())
    assert other.hosts["b"].address == b.address
    other.isolate(a, [b])
    assert connect_seconds(a, b, timeout=1) is None
    other.close()
    assert connect_seconds(a, b) is not None
    assert len(run_names(net.run_id)) == 3  # the namespaces are still the owner's


def test_close_removes_everything() -> None:
    require(os.geteuid() == 0 and shutil.which("ip") is not None, "root and iproute2's ip")
    links_before = root_links()
    network = Network()
    a, b = network.add_host("a"), network.add_host("b")
    network.isolate(a, [b])
    if shutil.which("iptables"):
        network.slow(b, delay_ms=50, loss_pct=10)
    sleeper = a.run(["sleep", "300"])
    assert len(run_names(network.run_id)) == 3
    assert network.state_file.exists()
    network.close()
    assert run_names(network.run_id) == []
    assert root_links() == links_before  # nothing was ever added to the root namespace
    assert sleeper.poll() is not None
    assert not network.state_file.exists()
    network.close()  # twice is harmless


KILLED_RUN = """
import time
from smarthome.devtools.netns import Network
net = Network()
host = net.add_host("a")
net.add_host("b")
host.run(["sleep", "300"], preexec_fn=None)  # would outlive its parent without cleanup
print(net.run_id, flush=True)
time.sleep(300)
"""


def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next() -> None:
    require(os.geteuid() == 0 and shutil.which("ip") is not None, "root and iproute2's ip")
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert run.stdout is not None
        run_id = run.stdout.readline().strip()
        assert run_id, "the run did not start"
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    left = run_names(run_id)
    assert len(left) == 3  # no atexit, no signal handler ran
    in_left = [int(p) for ns in left for p in netns._ip("netns", "pids", ns).stdout.split()]
    assert in_left, "the sleeper should still run in its namespace"
    removed = netns.cleanup_stale()
    assert set(left) <= set(removed)
    assert run_names(run_id) == []
    assert not (netns.STATE_DIR / f"{run_id}.json").exists()
    assert not any(psutil.pid_exists(pid) for pid in in_left)


STOPPED_RUN = """
import signal, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background child ignores Ctrl-C
from smarthome.devtools.netns import Network
net = Network()
a, b = net.add_host("a"), net.add_host("b")
a.run(["sleep", "300"], preexec_fn=None)
net.isolate(a, [b])
print(net.run_id, flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_with_sigterm_or_ctrl_c_removes_its_network(signum: int) -> None:
    require(os.geteuid() == 0 and shutil.which("ip") is not None, "root and iproute2's ip")
    run = subprocess.Popen(
        [sys.executable, "-c", STOPPED_RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert run.stdout is not None
        run_id = run.stdout.readline().strip()
        assert len(run_names(run_id)) == 3
        run.send_signal(signum)
        assert run.wait(30) == -signum  # it still dies of the signal, after cleaning up
    finally:
        run.kill()
        run.wait(10)
    assert run_names(run_id) == []
    assert not (netns.STATE_DIR / f"{run_id}.json").exists()


PRODUCER = """
import sys
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
servers, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=30000)
admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])
admin.close()
producer = KafkaProducer(bootstrap_servers=servers, acks="all", retries=10)
futures = [producer.send(topic, str(i).encode()) for i in range(1000)]
producer.flush(60)
print(sum(1 for f in futures if f.get(timeout=30)))
producer.close()
"""

CONSUMER = """
import sys, time
from kafka import KafkaConsumer
servers, topic = sys.argv[1], sys.argv[2]
consumer = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                         enable_auto_commit=False, group_id=None)
seen, deadline = set(), time.monotonic() + 40
while len(seen) < 1000 and time.monotonic() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        seen.update(int(r.value) for r in records)
consumer.close()
print(len(seen), min(seen, default=-1), max(seen, default=-1))
"""


def test_kafka_cluster_in_namespaces_with_remote_clients(net: Network, tmp_path: Path) -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for a local Kafka")
    from smarthome.devtools.kafka_cluster import LocalKafkaCluster

    nodes = [net.add_host(f"k{i + 1}") for i in range(3)]
    producer_host, consumer_host = net.add_host("producer"), net.add_host("consumer")
    cluster = LocalKafkaCluster(
        tmp_path / "cluster",
        brokers=3,
        heap_mb=256,
        die_with_parent=True,
        hosts=[node.address for node in nodes],
        launchers=[node.prefix for node in nodes],
    )
    assert cluster.bootstrap_servers == "10.77.0.1:9092,10.77.0.2:9094,10.77.0.3:9096"
    started = time.monotonic()
    try:
        cluster.start(timeout=60)
        print(f"cluster ready in {time.monotonic() - started:.1f} s")
        pids = [node.pid for node in cluster.nodes]
        assert all(pids)
        for node, pid in zip(nodes, pids, strict=True):  # each broker runs in its namespace
            assert str(pid) in netns._ip("netns", "pids", node.netns).stdout.split()
        args = [cluster.bootstrap_servers, "in-namespaces"]
        produced = producer_host.run(
            [sys.executable, "-c", PRODUCER, *args], stdout=subprocess.PIPE, text=True
        )
        out, _ = produced.communicate(timeout=90)
        assert produced.returncode == 0 and out.strip() == "1000"
        consumed = consumer_host.run(
            [sys.executable, "-c", CONSUMER, *args], stdout=subprocess.PIPE, text=True
        )
        out, _ = consumed.communicate(timeout=90)
        assert consumed.returncode == 0 and out.split() == ["1000", "0", "999"]
    finally:
        cluster.stop()
        net.close()
    assert not cluster.running()
    assert run_names(net.run_id) == []
