"""`make chaos`: the exactly-once promise under faults, on a private broker or cluster.

Two consumer processes in one group batch a synthetic stream while a seeded schedule
SIGKILLs consumers (restarted a second later), pauses them with SIGSTOP past their session
timeout (their partitions move on while they hold a full buffer), and SIGKILLs the broker
that leads the most partitions (restarted a few seconds later; on a cluster, the next broker
is killed only once that one has rejoined and caught up). At the end the batch files
are compared with what the producer reported delivered and what the topic holds:

    delivered 40000 | in the topic 40000 | in the files 40000 | duplicates 0 | missing 0

Beside them, two stream scorers (``kafka_stream_predict.py``, one group, a model set from
--model-dir or one trained first) score the same topic under the same faults: a consumer's
kill or pause hits the scorer of the same number at the same moment. Their committed
predictions are read as a read_committed consumer reads them and counted per input record
(``stream_outputs``): one prediction (or dead letter) per delivered record, none twice.
The run exits 1 on any loss or duplicate in either. Tests run the same code with their own
schedules (tests/devtools/test_chaos.py), and with scorers alone (tests/stream/).

``--secure`` (``make chaos SECURE=1``) runs it all on a secured cluster (``kafka_security``:
SASL_SSL, SCRAM logins, ACLs): the producer, each consumer and each scorer log in as their
own principal (``--kafka-config`` with its properties file) on the default topic and group
names, the ones its ACLs grant, and the run's own clients (the topic's creation, the counts)
as admin. Brokers killed and restarted keep their logins and ACLs: both live in the
cluster's metadata log, which a restarted node replays.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from smarthome.cli import add_kafka_config_flag, run
from smarthome.config import CONSUMER_GROUP, SCORER_GROUP, env
from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import list_batch_files
from smarthome.contracts.predictions import ALERTS_TOPIC, DEAD_LETTER_TOPIC, PREDICTIONS_TOPIC
from smarthome.devtools.kafka_cluster import LocalKafkaCluster
from smarthome.devtools.kafka_security import STREAM_TOPIC
from smarthome.devtools.ports import free_base_port
from smarthome.devtools.stream_outputs import Tally, committed_outputs, topic_values
from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError
from smarthome.kafka_settings import client_settings, kafka_config_in_force, use_kafka_config

FIRST_SYNTHETIC_ID = 5404  # synthetic UserIDs follow the dataset's (smarthome.ingest.synthetic)
SESSION_TIMEOUT = 6.0  # the broker's smallest allowed: pauses past it stay short


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the stream starts
    kind: str  # "kill-consumer" | "pause-consumer" | "kill-broker"
    #: the consumer and scorer of this number; unused for brokers (the busiest leader is chosen)
    target: int = 0


@dataclass
class ChaosConfig:
    records: int = 40_000
    rate: float = 250.0
    brokers: int = 1
    partitions: int = 3
    #: batch consumers (0: none, the scorers alone take the consumer faults)
    consumers: int = 2
    faults: list[Fault] = field(default_factory=list)
    pause_seconds: float = SESSION_TIMEOUT * 1.5
    broker_down_seconds: float = 3.0
    seed: int = 7
    work_dir: Path | None = None
    #: stream scorers beside the consumers (0: none), serving a copy of this model set
    scorers: int = 0
    model_set: Path | None = None
    #: a secured cluster (SASL_SSL, SCRAM, ACLs): each process logs in as its stage's
    #: principal, on the topics and groups the shipped ACLs name; the run's own clients as admin
    secure: bool = False
    #: seconds without records before a consumer or scorer stops: longer than any pause or
    #: cut-off plus the rebalance after it (the idle clock runs while it waits)
    idle_timeout: float = 20.0
    #: the producer gives up on a record not acknowledged within this many seconds
    delivery_timeout: float = 120.0


@dataclass
class ChaosResult:
    delivered: int
    producer_exit: int
    in_topic: int
    in_files: int
    duplicates: int
    missing: int
    faults_done: list[str]
    producer_output: str = ""
    #: the scorers' committed predictions and dead letters per input (None: no scorers)
    scoring: Tally | None = None

    @property
    def exactly_once(self) -> bool:
        batches = self.duplicates == 0 and self.missing == 0 and self.in_files == self.in_topic
        return batches and self.scored_once

    @property
    def scored_once(self) -> bool:
        """One committed prediction or dead letter per record in the topic (or no scorers)."""
        tally = self.scoring
        return tally is None or (tally.exactly_once and tally.inputs == self.in_topic)

    def line(self) -> str:
        return (
            f"delivered {self.delivered} | in the topic {self.in_topic} | in the files"
            f" {self.in_files} | duplicates {self.duplicates} | missing {self.missing}"
        )

    def scoring_line(self) -> str:
        """The scorers' count: delivered inputs against committed predictions."""
        if self.scoring is None:
            return "no scorers"
        return f"scored: delivered {self.delivered} | {self.scoring.line()}"


def seeded_schedule(
    seed: int, duration: float, kills: int, pauses: int, broker_kills: int, consumers: int
) -> list[Fault]:
    """Faults spread over the stream, each in its own slot of time, in a seeded order."""
    rng = random.Random(seed)
    kinds = ["kill-consumer"] * kills + ["pause-consumer"] * pauses + ["kill-broker"] * broker_kills
    rng.shuffle(kinds)
    slot = duration / (len(kinds) + 1)
    return [
        Fault(at=slot * (i + 0.5 + rng.uniform(0, 0.5)), kind=kind, target=rng.randrange(consumers))
        for i, kind in enumerate(kinds)
    ]


class ConsumerSlot:
    """One consumer of the group: a process, restarted after a kill, one log for all lives."""

    role = "consumer"

    def __init__(
        self,
        index: int,
        bootstrap: str,
        topic: str,
        batch_dir: Path,
        logs: Path,
        group: str | None = None,
        kafka_config: Path | None = None,
        idle_timeout: float = 20.0,
    ):
        self.index = index
        self.args = [
            sys.executable,
            str(CHECKOUT / "kafka_consumer_batch.py"),
            "--bootstrap-servers", bootstrap,
            "--topic", topic,
            "--batch-dir", str(batch_dir),
            "--group", group or f"chaos-{topic}",
            "--batch-size", "1000",
            "--max-batch-age", "1",
            "--idle-timeout", f"{idle_timeout:g}",
            "--session-timeout", f"{SESSION_TIMEOUT:g}",
            "--broker-wait", "120",
            "--no-progress",
            *login_flag(kafka_config),
        ]  # fmt: skip
        self.log = logs / f"consumer{index}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives = 0
        self.prefix: list[str] = []  # what it is started through, e.g. `ip netns exec NS`

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, *self.args], cwd=CHECKOUT, stdout=out, stderr=subprocess.STDOUT
            )
        self.lives += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self, seconds: float) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)
            time.sleep(seconds)
            self.proc.send_signal(signal.SIGCONT)


class ScorerProcess(ConsumerSlot):
    """One stream scorer of the group: a process, restarted after a kill, one log."""

    role = "scorer"

    def __init__(self, index: int, args: list[str], log: Path) -> None:
        self.index, self.args, self.log = index, args, log
        self.proc = None
        self.lives = 0
        self.prefix = []


def login_flag(kafka_config: Path | None) -> list[str]:
    """``--kafka-config FILE`` for a stage of a secured run (it wins over an inherited
    KAFKA_CONFIG); nothing on a plaintext one."""
    return ["--kafka-config", str(kafka_config)] if kafka_config else []


def pause_together(slots: list[ConsumerSlot], seconds: float) -> None:
    """SIGSTOP every running slot, wait ``seconds``, SIGCONT them: one pause for all."""
    stopped = [s.proc for s in slots if s.proc is not None and s.proc.poll() is None]
    for proc in stopped:
        proc.send_signal(signal.SIGSTOP)
    time.sleep(seconds)
    for proc in stopped:
        proc.send_signal(signal.SIGCONT)


def topic_user_ids(bootstrap: str, topic: str, timeout: float = 180.0) -> list[int]:
    """Every record's UserID in the topic, all partitions, read without a group to its end."""
    return [json.loads(v)["UserID"] for v in topic_values(bootstrap, topic, timeout)]


def file_user_ids(batch_dir: Path) -> list[int]:
    files = list_batch_files(batch_dir)
    if not files:
        return []
    return pd.concat([pd.read_csv(p, usecols=["UserID"]) for p in files])["UserID"].tolist()


class Chaos:
    """One chaos run: cluster, topic, consumers, producer, faults, then the counts."""

    def __init__(self, config: ChaosConfig, log: Any = print) -> None:
        self.config = config
        self.log = log
        self.work = Path(config.work_dir or tempfile.mkdtemp(prefix="smarthome-chaos-"))
        self.batch_dir = self.work / "batched_data"
        self.cluster = self.make_cluster()
        self.done: list[str] = []
        #: the stream scorers, by the consumer slot number whose faults they share
        self.scorer_slots: list[ScorerProcess] = []
        #: the batch consumers, and the producer's command line (what each logs in with)
        self.consumer_slots: list[ConsumerSlot] = []
        self.producer_args: list[str] = []
        self.model_dir = self.work / "spark_models"
        if config.secure:
            # the names the shipped ACLs (kafka_security.GRANTS) give each principal: the
            # stages run with exactly the rights production gives them, no more
            self.topic = STREAM_TOPIC
            self.predictions_topic, self.alerts_topic = PREDICTIONS_TOPIC, ALERTS_TOPIC
            self.dead_letter_topic = DEAD_LETTER_TOPIC
            self.consumer_group, self.scorer_group = CONSUMER_GROUP, SCORER_GROUP
        else:  # names of its own: nothing of another run on the same broker is counted
            self.topic = f"chaos-{config.seed}-{int(time.time())}"
            self.predictions_topic = f"{self.topic}-predictions"
            self.alerts_topic = f"{self.topic}-alerts"
            self.dead_letter_topic = f"{self.topic}-rejected"
            self.consumer_group = f"chaos-{self.topic}"
            self.scorer_group = f"chaos-scorer-{self.topic}"
        self._restarter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-restart")
        self._restart: Future[None] | None = None

    def make_cluster(self) -> LocalKafkaCluster:
        """The private cluster, on free ports of this host."""
        cfg = self.config
        return LocalKafkaCluster(
            self.work / "kafka",
            port=free_base_port(cfg.brokers),
            brokers=cfg.brokers,
            num_partitions=cfg.partitions,
            die_with_parent=True,
            secure=cfg.secure,
        )

    def launch_prefix(self, role: str, index: int = 0) -> list[str]:
        """What a stage's process is started through (nothing: it runs on this host)."""
        return []

    def login(self, principal: str) -> Path | None:
        """The properties file a process of the run logs in with as ``principal`` (None on a
        plaintext cluster: it connects as KAFKA_CONFIG says, if at all)."""
        return self.cluster.client_properties(principal) if self.config.secure else None

    def run(self) -> ChaosResult:
        cfg = self.config
        started = time.monotonic()
        self.cluster.start()
        secured = " secured (SASL_SSL, SCRAM, ACLs)" if cfg.secure else ""
        self.log(f"Kafka: {cfg.brokers} node(s){secured} at {self.cluster.bootstrap_servers}"
                 f" ({time.monotonic() - started:.0f} s)")  # fmt: skip
        # the run's own clients (topic creation, the counts) log in as admin, for the run
        # only: made in-process (tests), it leaves KAFKA_CONFIG as it found it
        try:
            with kafka_config_in_force(self.login("admin")):
                return self._run()
        finally:
            for slot in [*self.consumer_slots, *self.scorer_slots]:
                slot.kill()
            self.cluster.stop()
            self._restarter.shutdown(wait=True)

    def _run(self) -> ChaosResult:
        cfg = self.config
        self._create_topic()
        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        slots = self.consumer_slots = [
            ConsumerSlot(
                i, self.cluster.bootstrap_servers, self.topic, self.batch_dir, logs,
                group=self.consumer_group, kafka_config=self.login("consumer"),
                idle_timeout=cfg.idle_timeout,
            )
            for i in range(cfg.consumers)
        ]  # fmt: skip
        for slot in slots:
            slot.prefix = self.launch_prefix("consumer", slot.index)
            slot.start()
        self._start_scorers(logs)
        producer = self._start_producer(logs / "producer.log")
        self._inject(slots, producer)
        producer_exit = producer.wait()
        output = (logs / "producer.log").read_text(errors="replace")
        self._wait_recovered()
        self.log("stream done; waiting for the consumers and scorers to drain and stop")
        for slot in [*slots, *self.scorer_slots]:
            if slot.proc is not None:
                slot.proc.wait(timeout=300)
        return self._count(producer_exit, output)

    def _start_scorers(self, logs: Path) -> None:
        """``config.scorers`` scorers of one group on the topic, serving a copy of the set."""
        cfg = self.config
        if not cfg.scorers:
            return
        if cfg.model_set is None:
            raise ValueError("scorers need a model set (ChaosConfig.model_set)")
        shutil.copytree(cfg.model_set, self.model_dir / cfg.model_set.name, dirs_exist_ok=True)
        args = [
            sys.executable, str(CHECKOUT / "kafka_stream_predict.py"),
            "--bootstrap-servers", self.cluster.bootstrap_servers,
            "--topic", self.topic,
            "--predictions-topic", self.predictions_topic,
            "--alerts-topic", self.alerts_topic,
            "--dead-letter-topic", self.dead_letter_topic,
            "--group", self.scorer_group,
            "--model-dir", str(self.model_dir),
            "--idle-timeout", f"{cfg.idle_timeout:g}",
            "--session-timeout", f"{SESSION_TIMEOUT:g}",
            "--broker-wait", "120",
            *login_flag(self.login("scorer")),
        ]  # fmt: skip
        self.scorer_slots = [
            ScorerProcess(i, args, logs / f"scorer{i}.log") for i in range(cfg.scorers)
        ]
        for slot in self.scorer_slots:
            slot.prefix = self.launch_prefix("scorer", slot.index)
            slot.start()

    def _hit(self, slots: list[ConsumerSlot], index: int) -> list[ConsumerSlot]:
        """Consumer ``index`` and the scorer of the same number, those of them that run."""
        hit = [s for s in [*slots, *self.scorer_slots] if s.index == index]
        if not hit:
            raise ValueError(f"no consumer nor scorer {index} to hit")
        return hit

    def consumer_logs(self) -> str:
        """Every batch consumer's log, one after the other (what a failed count shows)."""
        logs = sorted((self.work / "logs").glob("consumer*.log"))
        return "\n".join(p.read_text() for p in logs)

    def scorer_logs(self) -> str:
        """Every scorer's log, one after the other (what a failed count shows)."""
        return "\n".join(p.read_text() for p in sorted((self.work / "logs").glob("scorer*.log")))

    def _create_topic(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(
            bootstrap_servers=self.cluster.bootstrap_servers.split(","), **client_settings()
        )
        try:
            admin.create_topics(
                [NewTopic(self.topic, self.config.partitions, min(3, self.config.brokers))]
            )
        finally:
            admin.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            leaders = self.cluster.leaders([self.topic]).get(self.topic, {})
            if len(leaders) == self.config.partitions and min(leaders.values()) >= 0:
                return
            time.sleep(0.3)
        raise UserError(f"topic {self.topic} has no leader for every partition after 60 s")

    def _start_producer(self, log: Path) -> subprocess.Popen[bytes]:
        cfg = self.config
        self.producer_args = [
            sys.executable, str(CHECKOUT / "kafka_producer.py"),
            "--bootstrap-servers", self.cluster.bootstrap_servers,
            "--topic", self.topic,
            "--synthetic", str(cfg.records),
            "--seed", str(cfg.seed),
            "--rate", f"{cfg.rate:g}",
            "--delivery-timeout", f"{cfg.delivery_timeout:g}",
            "--no-progress",
            *login_flag(self.login("producer")),
        ]  # fmt: skip
        with log.open("wb") as out:
            return subprocess.Popen(
                [*self.launch_prefix("producer"), *self.producer_args],
                cwd=CHECKOUT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _inject(self, slots: list[ConsumerSlot], producer: subprocess.Popen[bytes]) -> None:
        t0 = time.monotonic()
        for fault in sorted(self.config.faults, key=lambda f: f.at):
            time.sleep(max(0.0, t0 + fault.at - time.monotonic()))
            if producer.poll() is not None:
                self.log(f"stream over before {fault.kind} at {fault.at:.0f} s: not done")
                continue
            when = f"{time.monotonic() - t0:5.1f} s"
            logged = len(self.done)
            if fault.kind == "kill-consumer":
                hit = self._hit(slots, fault.target)
                for slot in hit:
                    slot.kill()
                time.sleep(1)
                for slot in hit:
                    slot.start()
                self.done.extend(
                    f"{when}: SIGKILL {slot.role} {fault.target}, restarted" for slot in hit
                )
            elif fault.kind == "pause-consumer":
                first, *others = hit = self._hit(slots, fault.target)
                seconds = self.config.pause_seconds
                pause_together(hit, seconds)
                self.done.append(
                    f"{when}: SIGSTOP {first.role} {fault.target} for {seconds:g} s"
                    f" (session timeout {SESSION_TIMEOUT:g} s)"
                )
                self.done.extend(
                    f"{when}: SIGSTOP {slot.role} {fault.target} for {seconds:g} s,"
                    f" with {first.role} {fault.target}"
                    for slot in others
                )
            elif fault.kind == "kill-broker":
                # one node down at a time, as the cluster promises: the last one killed has
                # rejoined and caught up before the next goes (a rolling fault, not two down)
                waited = self._wait_recovered()
                when = f"{time.monotonic() - t0:5.1f} s"
                node = self.cluster.busiest_leader(self.topic)
                node.kill()
                self.done.append(
                    f"{when}: SIGKILL broker {node.node_id} (most leaders"
                    + (
                        f"; waited {waited:.0f} s for the last one to rejoin)"
                        if waited >= 1
                        else ")"
                    )
                )
                time.sleep(self.config.broker_down_seconds)
                # launched from this thread: the parent-death signal follows the thread that
                # forked, so a JVM started by a short-lived thread would be SIGTERMed with it
                node.launch()
                self._restart = self._restarter.submit(self.cluster.wait_ready, 180, [node])
            else:
                raise ValueError(f"unknown fault {fault.kind!r}")
            for line in self.done[logged:]:  # a consumer's fault and its scorer's
                self.log(line)

    def _wait_recovered(self) -> float:
        """Seconds spent waiting for the last restarted broker to be back and in sync (its
        start-up error, if any, is raised here)."""
        if self._restart is None:
            return 0.0
        started = time.monotonic()
        self._restart.result()
        self._restart = None
        self.cluster.wait_fully_replicated(self.topic)
        return time.monotonic() - started

    def _count(self, producer_exit: int, output: str) -> ChaosResult:
        last = [line for line in output.splitlines() if line.startswith("delivered ")]
        delivered = int(last[-1].split()[1].rstrip(",")) if last else 0
        in_topic = topic_user_ids(self.cluster.bootstrap_servers, self.topic)
        in_files = file_user_ids(self.batch_dir)
        counts = Counter(in_files)
        topic_ids = set(in_topic)
        scoring = None
        if self.scorer_slots:
            scoring = committed_outputs(
                self.cluster.bootstrap_servers,
                self.topic,
                self.predictions_topic,
                self.dead_letter_topic,
            )
        return ChaosResult(
            delivered=delivered,
            producer_exit=producer_exit,
            in_topic=len(in_topic),
            in_files=len(in_files),
            duplicates=sum(n - 1 for n in counts.values() if n > 1),
            missing=len(topic_ids - counts.keys()),
            faults_done=self.done,
            producer_output=output,
            scoring=scoring,
        )


def model_set_for_scorers(model_dir: Path, work: Path, log: Any = print) -> Path:
    """The newest set in ``model_dir``; with none, one trained on the dataset (small models:
    the run tests delivery, not accuracy) in ``work``."""
    newest = registry.newest_set(model_dir) if model_dir.is_dir() else None
    if newest is not None:
        return newest
    from smarthome.devtools.batches import write_batches

    batch_dir, trained = work / "training-batches", work / "training-models"
    write_batches(Path(env("DATASET_PATH")), batch_dir, parts=1)
    log(f"no model set in {model_dir}: training one for the scorers (spark_training.py --quick)")
    done = subprocess.run(
        [sys.executable, str(CHECKOUT / "spark_training.py"), "--batch-dir", str(batch_dir),
         "--model-dir", str(trained), "--quick"],
        cwd=CHECKOUT, capture_output=True, text=True,
    )  # fmt: skip
    newest = registry.newest_set(trained) if trained.is_dir() else None
    if done.returncode != 0 or newest is None:
        raise UserError(
            f"could not train a model set for the scorers (spark_training.py exited"
            f" {done.returncode}: {done.stderr.strip()[-300:]}); train one into {model_dir}"
            " or pass --scorers 0"
        )
    return newest


def add_model_dir_flag(parser: argparse.ArgumentParser) -> None:
    """``--model-dir``: where the scorers' model set comes from (``model_set_for_scorers``)."""
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(env("MODEL_DIR")),
        help="the scorers serve a copy of its newest set; with none, a small one is trained"
        " first (default: MODEL_DIR or spark_models)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", type=int, default=1, help="1 (default) or 3 nodes")
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=300.0, help="records/s of the producer")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7, help="the stream's and the faults'")
    parser.add_argument("--kills", type=int, default=3, help="consumer SIGKILLs")
    parser.add_argument("--pauses", type=int, default=3, help="consumer pauses past the timeout")
    parser.add_argument("--broker-kills", type=int, default=2)
    parser.add_argument(
        "--scorers",
        type=int,
        default=2,
        help="stream scorers beside the consumers, hit by the same faults (0: none; default 2)",
    )
    add_model_dir_flag(parser)
    add_kafka_config_flag(
        parser,
        "every client and stage of the run connects with; the private cluster must accept them",
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="secure the private cluster (SASL_SSL, SCRAM logins, ACLs): the producer, the"
        " consumers and the scorers each log in as their own principal, on the topics and"
        " groups the ACLs name; the run's own clients as admin (make chaos SECURE=1)",
    )
    args = parser.parse_args(argv)
    if args.secure and args.kafka_config:
        parser.error("--secure makes the cluster's logins itself: leave out --kafka-config")
    use_kafka_config(args.kafka_config)  # the stages it starts inherit KAFKA_CONFIG
    if args.scorers not in (0, 1, 2):
        parser.error("--scorers must be 0, 1 or 2 (one per consumer at most)")
    duration = args.records / args.rate
    faults = seeded_schedule(
        args.seed, duration, args.kills, args.pauses, args.broker_kills, consumers=2
    )
    config = ChaosConfig(
        records=args.records,
        rate=args.rate,
        brokers=args.brokers,
        partitions=args.partitions,
        faults=faults,
        seed=args.seed,
        scorers=args.scorers,
        secure=args.secure,
    )
    chaos = Chaos(config)
    secured = ", secured" if args.secure else ""
    print(
        f"chaos: {args.records} records at {args.rate:g}/s, {len(faults)} faults,"
        f" {args.scorers} scorer(s){secured}, in {chaos.work}"
    )
    if args.scorers:
        config.model_set = model_set_for_scorers(args.model_dir, chaos.work)
        print(f"scorers serve {config.model_set.name}")
    result = chaos.run()
    if result.producer_exit != 0:
        print(f"producer exited {result.producer_exit}: {result.producer_output[-500:]}")
    print(result.line())
    ok = result.exactly_once and result.producer_exit == 0 and result.delivered == args.records
    scored = ""
    if result.scoring is not None:
        tally = result.scoring
        ok = ok and tally.inputs == result.delivered
        scored = (
            f" | predictions: delivered {result.delivered}, predictions {tally.predictions},"
            f" dead letters {tally.dead_letters}, duplicates {tally.duplicates},"
            f" missing {tally.missing}"
        )
    verdict = "yes" if ok else "NO (see the logs in the folder above)"
    print(f"exactly once: {verdict}{scored}")
    return 0 if ok else 1


if __name__ == "__main__":
    run(main, "make chaos")
