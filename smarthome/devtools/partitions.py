"""`make partitions`: exactly once under network partitions, on hosts of our own (root only).

Every broker of a 3-node cluster and every client (the producer, two batch consumers, two
stream scorers) runs in a Linux network namespace of its own, on a private bridge
(``netns``); this run's own checks run in one more, ``control``. A seeded schedule then
partitions the network, one fault at a time, each healed after a while and the cluster back
in sync before the next:

- the broker leading the most partitions cut off from the other brokers, clients still
  reaching it; then (another fault) cut off from everyone;
- batch consumer N and scorer N cut off from every broker for three session timeouts while
  they keep running (their partitions move to the others, and they must not publish for
  them once they are back);
- a one-way partition: a broker still receives from everyone but nothing it sends arrives;
- a slow, lossy link: 200 ms each way and 20 % of the packets lost on the busiest leader's
  link, for a minute (``slow_link``: what ``tc netem`` does);
- the busiest leader cut off from everyone and SIGKILLed during the partition; restarted
  once the network is healed.

Then the counts, as ``make chaos`` prints them: what the producer reported acknowledged
(acks=all), what the topic holds, what the batch files hold, what predictions the scorers
committed; duplicates and missing for each. A record missing anywhere is named with the
faults in force when it was sent. Exit 1 on any loss or duplicate, or a fault not done.

The outer process (root namespace) makes the hosts and removes them at the end, also on
Ctrl-C or SIGTERM; it runs the checks as this module again inside ``control`` (only there
are the hosts' addresses reachable). A run killed with SIGKILL leaves namespaces that the
next run removes first (``netns.cleanup_stale``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smarthome.cli import run
from smarthome.devtools.chaos import (
    FIRST_SYNTHETIC_ID,
    SESSION_TIMEOUT,
    Chaos,
    ChaosConfig,
    ChaosResult,
    ConsumerSlot,
    add_model_dir_flag,
    file_user_ids,
    model_set_for_scorers,
)
from smarthome.devtools.kafka_cluster import LocalKafkaCluster
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.netns import Network, cleanup_stale, namespaces
from smarthome.devtools.stream_outputs import topic_messages
from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError

BROKERS = 3
KAFKA_PORT = 9092  # every broker has an address of its own: the same ports on each
FAULTS = (
    "leader-from-brokers",
    "leader-from-everyone",
    "client-cut-off",
    "one-way",
    "slow-link",
    "kill-in-partition",
)


@dataclass
class PartitionPlan:
    """How long each fault lasts, and the slow link's figures."""

    partition_seconds: float = 12.0
    #: a cut-off client stays cut off past its session timeout: its partitions move
    cut_off_seconds: float = SESSION_TIMEOUT * 3
    slow_seconds: float = 60.0
    delay_ms: float = 200.0
    loss_pct: float = 20.0
    #: seconds of plain streaming before the first fault and between two (at least)
    gap_seconds: float = 5.0

    def seconds(self, kind: str) -> float:
        return {
            "client-cut-off": self.cut_off_seconds,
            "slow-link": self.slow_seconds,
        }.get(kind, self.partition_seconds)

    def stream_seconds(self) -> float:
        """How long the stream must last for every fault, its gaps and recoveries."""
        recovery = 12.0  # healing, a restarted broker's start, replicas catching up
        faults = sum(self.seconds(kind) + self.gap_seconds * 1.5 + recovery for kind in FAULTS)
        return faults + 2 * self.gap_seconds + 15


@dataclass
class Window:
    """A fault in force from ``start`` to ``end`` (seconds after the stream started)."""

    start: float
    kind: str
    what: str
    end: float | None = None


@dataclass
class PartitionResult:
    chaos: ChaosResult
    faults_done: list[str]
    faults_missing: list[str]
    lost: list[int] = field(default_factory=list)  # acknowledged, not in the topic
    topic_duplicates: int = 0
    missing_reports: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.chaos.exactly_once
            and not self.lost
            and self.topic_duplicates == 0
            and not self.faults_missing
        )


def faults_in_force(windows: list[Window], rate: float, user_id: int) -> str:
    """When the producer sent ``user_id`` (at its steady ``rate``, from the stream's start)
    and the faults in force then, or else the next one."""
    sent = (user_id - FIRST_SYNTHETIC_ID) / rate
    active = [w.what for w in windows if w.start <= sent <= (w.end or float("inf"))]
    when = f"sent at about {sent:.0f} s"
    if active:
        return f"{when}, during: {'; '.join(active)}"
    # a record buffered when a fault began is hit by that fault, not by one at its sending
    later = [w for w in windows if w.start > sent]
    nxt = f" (next: {later[0].what}, at {later[0].start:.0f} s)" if later else ""
    return f"{when}, no fault in force{nxt}"


class PartitionChaos(Chaos):
    """A chaos run whose brokers and clients are hosts of ``network`` (run inside a host)."""

    def __init__(
        self, config: ChaosConfig, network: Network, plan: PartitionPlan, log: Any = print
    ) -> None:
        self.network = network
        self.plan = plan
        self.windows: list[Window] = []
        self.rng = random.Random(config.seed)
        super().__init__(config, log)
        self.t0 = 0.0
        self.result: PartitionResult | None = None

    def make_cluster(self) -> LocalKafkaCluster:
        hosts = [self.network.hosts[f"kafka-{i + 1}"] for i in range(BROKERS)]
        return LocalKafkaCluster(
            self.work / "kafka",
            port=KAFKA_PORT,
            brokers=BROKERS,
            num_partitions=self.config.partitions,
            die_with_parent=True,
            hosts=[h.address for h in hosts],
            launchers=[h.prefix for h in hosts],
        )

    def launch_prefix(self, role: str, index: int = 0) -> list[str]:
        name = role if role == "producer" else f"{role}-{index}"
        return self.network.hosts[name].prefix

    # -- the faults ----------------------------------------------------------------------
    def broker_host(self, node: LocalKafka) -> str:
        return f"kafka-{node.node_id}"

    def others(self, name: str) -> list[str]:
        return [h for h in self.network.hosts if h != name]

    def brokers_but(self, name: str) -> list[str]:
        return [f"kafka-{i + 1}" for i in range(BROKERS) if f"kafka-{i + 1}" != name]

    def now(self) -> float:
        return time.monotonic() - self.t0

    def begin(self, kind: str, what: str) -> Window:
        window = Window(self.now(), kind, what)
        self.windows.append(window)
        self.log(f"{window.start:6.1f} s: {what}")
        return window

    def end(self, window: Window, note: str = "healed") -> None:
        window.end = self.now()
        self.log(f"{window.end:6.1f} s: {note} ({window.what})")
        self.done.append(f"{window.start:.1f}-{window.end:.1f} s: {window.what}")

    def _inject(self, slots: list[ConsumerSlot], producer: subprocess.Popen[bytes]) -> None:
        plan, net = self.plan, self.network
        self.t0 = time.monotonic()
        kinds = list(FAULTS)
        self.rng.shuffle(kinds)
        time.sleep(plan.gap_seconds)
        for kind in kinds:
            if producer.poll() is not None:
                self.log(f"{self.now():6.1f} s: the stream is over before {kind}: not done")
                continue
            seconds = plan.seconds(kind)
            leader = self.cluster.busiest_leader(self.topic)
            name = self.broker_host(leader)
            if kind == "leader-from-brokers":
                window = self.begin(kind, f"{name} (most leaders) cut off from the other brokers")
                net.isolate(name, self.brokers_but(name))
                time.sleep(seconds)
                net.heal(name)
            elif kind == "leader-from-everyone":
                window = self.begin(kind, f"{name} (most leaders) cut off from every host")
                net.isolate(name, self.others(name))
                time.sleep(seconds)
                net.heal(name)
            elif kind == "client-cut-off":
                n = self.rng.randrange(self.config.consumers)
                cut = [f"consumer-{n}", *([f"scorer-{n}"] if self.scorer_slots else [])]
                window = self.begin(
                    kind,
                    f"{' and '.join(cut)} cut off from every broker for {seconds:g} s"
                    f" (session timeout {SESSION_TIMEOUT:g} s), still running",
                )
                for host in cut:
                    net.isolate(host, self.brokers_but(""))
                time.sleep(seconds)
                for host in cut:
                    net.heal(host)
            elif kind == "one-way":
                name = f"kafka-{self.rng.randrange(BROKERS) + 1}"
                window = self.begin(kind, f"{name} receives from every host, sends to none")
                net.one_way(name, self.others(name))
                time.sleep(seconds)
                net.heal(name)
            elif kind == "slow-link":
                window = self.begin(
                    kind,
                    f"{name} (most leaders) link {plan.delay_ms:g} ms each way,"
                    f" {plan.loss_pct:g} % packets lost, for {seconds:g} s",
                )
                net.slow(name, plan.delay_ms, plan.loss_pct, seed=self.config.seed)
                time.sleep(seconds)
                self.log(f"{self.now():6.1f} s: slow link: {net.unslow(name)}")
            elif kind == "kill-in-partition":
                window = self.begin(
                    kind, f"{name} (most leaders) cut off from every host, SIGKILLed"
                )
                net.isolate(name, self.others(name))
                time.sleep(seconds / 2)
                leader.kill()
                self.log(f"{self.now():6.1f} s: SIGKILL broker {leader.node_id} (cut off)")
                time.sleep(seconds / 2)
                net.heal(name)
                leader.launch()
                self.cluster.wait_ready(180, [leader])
            else:
                raise ValueError(f"unknown fault {kind!r}")
            self.end(window)
            self.cluster.wait_fully_replicated(self.topic)
            self.log(f"{self.now():6.1f} s: every replica in sync again")
            time.sleep(plan.gap_seconds * self.rng.uniform(1.0, 2.0))

    # -- the counts ----------------------------------------------------------------------
    def _count(self, producer_exit: int, output: str) -> ChaosResult:
        """The chaos counts, and (while the cluster still runs) who is missing and when."""
        result = super()._count(producer_exit, output)
        self.result = self.report(result)
        return result

    def faults_at(self, user_id: int) -> str:
        return faults_in_force(self.windows, self.config.rate, user_id)

    def report(self, result: ChaosResult) -> PartitionResult:
        bootstrap = self.cluster.bootstrap_servers
        messages = topic_messages(bootstrap, self.topic)
        uid_at = {(p, o): json.loads(v)["UserID"] for p, o, v in messages}
        in_topic = Counter(uid_at.values())
        acknowledged = range(FIRST_SYNTHETIC_ID, FIRST_SYNTHETIC_ID + result.delivered)
        if result.producer_exit != 0:
            acknowledged = range(0)  # which ones failed is not known: the exit says it
        lost = [uid for uid in acknowledged if uid not in in_topic]
        files = Counter(file_user_ids(self.batch_dir))
        reports = [
            f"lost (acknowledged, not in the topic): UserID {u}, {self.faults_at(u)}" for u in lost
        ]
        reports += [
            f"in the topic {n} times: UserID {u}, {self.faults_at(u)}"
            for u, n in sorted(in_topic.items())
            if n > 1
        ]
        reports += [
            f"not in the batch files: UserID {u}, {self.faults_at(u)}"
            for u in sorted(in_topic.keys() - files.keys())
        ]
        reports += [
            f"in the batch files {n} times: UserID {u}, {self.faults_at(u)}"
            for u, n in sorted(files.items())
            if n > 1
        ]
        if result.scoring is not None:
            reports += [
                f"no prediction committed: UserID {uid_at[key]}, {self.faults_at(uid_at[key])}"
                for key in sorted(result.scoring.missing_inputs)
                if key in uid_at
            ]
            reports += [
                f"predicted more than once: UserID {uid_at[key]}, {self.faults_at(uid_at[key])}"
                for key in sorted(result.scoring.duplicate_inputs)
                if key in uid_at
            ]
        healed = {w.kind for w in self.windows if w.end is not None}
        return PartitionResult(
            chaos=result,
            faults_done=self.done,
            faults_missing=[kind for kind in FAULTS if kind not in healed],
            lost=lost,
            topic_duplicates=sum(n - 1 for n in in_topic.values() if n > 1),
            missing_reports=reports,
        )


# -- the two processes -------------------------------------------------------------------
HOSTS = [
    *(f"kafka-{i + 1}" for i in range(BROKERS)),
    "producer",
    "consumer-0",
    "consumer-1",
    "scorer-0",
    "scorer-1",
    "control",
]


def inside(args: argparse.Namespace) -> int:
    """The run, inside the ``control`` host of the network the outer process made."""
    network = Network.attach(json.loads(Path(args.network).read_text()))
    plan = PartitionPlan(slow_seconds=args.slow_seconds)
    rate = args.rate or args.records / plan.stream_seconds()
    config = ChaosConfig(
        records=args.records,
        rate=rate,
        brokers=BROKERS,
        partitions=3,
        seed=args.seed,
        scorers=2 if args.model_set else 0,
        model_set=Path(args.model_set) if args.model_set else None,
        work_dir=Path(args.work),
        idle_timeout=plan.cut_off_seconds + 15,
        delivery_timeout=300,
    )
    chaos = PartitionChaos(config, network, plan, log=lambda line: print(line, flush=True))
    print(
        f"partitions: {args.records} records at {rate:.0f}/s, seed {args.seed},"
        f" {BROKERS} brokers and {len(HOSTS) - BROKERS} clients on hosts of their own",
        flush=True,
    )
    try:
        chaos.run()
        assert chaos.result is not None
        result = chaos.result
    finally:
        network.close()  # heals what is still broken
    counts = result.chaos
    print(counts.line())
    if counts.scoring is not None:
        print(counts.scoring_line())
    print(
        f"acknowledged and lost {len(result.lost)} | duplicates in the topic"
        f" {result.topic_duplicates} | faults done {len(result.faults_done)}"
        f" of {len(FAULTS)}"
    )
    for line in result.missing_reports[:20]:
        print(line)
    if len(result.missing_reports) > 20:
        print(f"... and {len(result.missing_reports) - 20} more")
    if result.faults_missing:
        print(f"not done: {', '.join(result.faults_missing)} (the stream ended first)")
    if counts.producer_exit != 0:
        print(f"producer exited {counts.producer_exit}: {counts.producer_output[-300:]}")
    print(f"exactly once: {'yes' if result.ok else 'NO (see the logs in ' + args.work + ')'}")
    return 0 if result.ok else 1


def outside(args: argparse.Namespace) -> int:
    """Make the hosts, run ``inside`` in ``control``, remove the hosts (whatever happens)."""
    if os.geteuid() != 0:
        raise UserError("make partitions needs root: it makes network namespaces")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} is not installed: apt-get install iproute2 iptables")
    for ns in cleanup_stale():
        print(f"removed {ns}, left by a run that was killed")
    work = Path(args.work or tempfile.mkdtemp(prefix="smarthome-partitions-"))
    work.mkdir(parents=True, exist_ok=True)
    model_set = None
    if args.scorers:
        model_set = model_set_for_scorers(args.model_dir, work)
        print(f"scorers serve {model_set.name}")
    with Network() as network:
        for name in HOSTS:
            network.add_host(name)
        described = work / "network.json"
        described.write_text(json.dumps(network.describe()))
        argv = [
            sys.executable, "-m", "smarthome.devtools.partitions", "--inside", str(described),
            "--records", str(args.records), "--seed", str(args.seed),
            "--slow-seconds", f"{args.slow_seconds:g}", "--work", str(work),
            *(["--rate", f"{args.rate:g}"] if args.rate else []),
            *(["--model-set", str(model_set)] if model_set else []),
        ]  # fmt: skip
        inner = network.hosts["control"].run(argv, cwd=CHECKOUT)
        code = inner.wait()
    left = [ns for ns in namespaces() if network.run_id in ns]
    print(f"hosts removed: {'yes' if not left else 'NO: ' + ', '.join(left)}")
    return code if not left else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make partitions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1, help="the stream's and the faults'")
    parser.add_argument(
        "--rate", type=float, default=0, help="records/s (default: the stream lasts as long"
        " as the faults need)"
    )  # fmt: skip
    parser.add_argument(
        "--slow-seconds", type=float, default=60.0, help="how long the slow link lasts"
    )
    parser.add_argument("--scorers", type=int, choices=(0, 2), default=2)
    add_model_dir_flag(parser)
    parser.add_argument("--work", help="the run's folder (default: a new temporary one)")
    parser.add_argument("--inside", metavar="NETWORK_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--model-set", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        args.network = args.inside
        return inside(args)
    return outside(args)


if __name__ == "__main__":
    run(main, "make partitions")
