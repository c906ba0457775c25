"""Stream scoring: end-to-end latency and records/s of kafka_stream_predict.py against the
alternatives, on one private broker.

Three scorers read the same kind of input topic and write one JSON prediction per record
(all three models of one model set) to an output topic:

- ``scorer``: ``kafka_stream_predict.py`` (exactly once: Kafka transactions every
  --commit-interval-ms, one run per interval asked for);
- ``bare``: a kafka-python consume-score-produce loop without transactions, the same numpy
  scorer (at-least-once): what the transactions cost;
- ``spark``: a Spark Structured Streaming query (Kafka ``readStream``, ``from_json``,
  ``PipelineModel.transform`` with the three pipelines, Kafka sink, default trigger,
  local[2]): what users would reach for (``bench/stream_baselines.py``).

Each scorer runs in its own process with its own topics. A producer sends dataset records at a
fixed rate (200, 1,000, 5,000 records/s by default), noting each record's send time; a
read_committed consumer in another process notes when each prediction becomes readable, and
the two are matched by the input's partition and offset that every prediction names. Between
rates the pipeline drains. Then, for the scorer and Spark, --burst-records are written in one
Kafka transaction: they become visible all at once when it commits, and the time until the
last prediction is readable gives the most records/s one process sustains (its start-up and
the producer's speed left out). Every run also counts missing and duplicate predictions.

    python -m bench.bench_stream [--rates 200,1000,5000] [--seconds 15] [--burst-records N]
        [--systems scorer,bare,spark] [--commit-intervals-ms 50,100] [--model-dir DIR]

Uses the newest set in --model-dir (env MODEL_DIR); without one it trains one on the whole
dataset first (``spark_training.py --latest-only``). The Spark query needs Spark's Kafka
connector: ``make spark-kafka-jars`` (``make bench`` resolves it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.bench_api import model_dir_with_a_set
from bench.stream_baselines import spark_jars
from smarthome.cli import add_kafka_config_flag
from smarthome.config import env
from smarthome.contracts import model_sets as registry
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.ports import free_port
from smarthome.devtools.processes import parent_death_signal, stop_children_at_exit
from smarthome.devtools.supervisor import Stage
from smarthome.ingest import producer as kp
from smarthome.ingest.dataset import read_dataset
from smarthome.kafka_settings import client_settings, use_kafka_config

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "dataset" / "smart_home_device_usage_data.csv"
SCORER_SCRIPT = "kafka_stream_predict.py"
SYSTEMS = ("scorer", "bare", "spark")
DESCRIPTIONS = {
    "scorer": "kafka_stream_predict.py, exactly once, commit every {interval} ms",
    "bare": "kafka-python loop, no transactions (at-least-once), same numpy scorer",
    "spark": "Spark Structured Streaming, PipelineModel x3, Kafka sink (at-least-once)",
}
PRODUCER_LINGER_MS = 1  # the load's own batching delay counts in every latency: keep it small
WARMUP_RATE = 200.0


@dataclass
class Sent:
    """Input records sent in one phase: where each landed and when it was sent (epoch s)."""

    phase: str
    rate: float = 0.0
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    seconds: float = 0.0  # how long the sending took


@dataclass
class LatencyRow:
    system: str
    rate: float
    achieved: float
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    missing: int


@dataclass
class BurstRow:
    system: str
    records: int
    seconds: float
    cpu_seconds: float
    missing: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunResult:
    system: str
    latency: list[LatencyRow] = field(default_factory=list)
    burst: BurstRow | None = None
    inputs: int = 0
    outputs: int = 0
    duplicates: int = 0
    missing: int = 0


# -- the reader of the predictions ------------------------------------------------------------
class Recorder:
    """``bench.stream_reader`` in its own process, its progress followed from its stdout."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, work: Path) -> None:
        self.count = 0
        self.last_arrival = 0.0
        self.out = work / f"{topic}.npz"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.stream_reader", "--bootstrap-servers", bootstrap,
             "--topic", topic, "--partitions", str(partitions), "--out", str(self.out)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=parent_death_signal(),
        )  # fmt: skip
        self._follower = threading.Thread(target=self._follow, daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        for line in self.process.stdout:
            count, arrival = line.split()
            self.last_arrival, self.count = float(arrival), int(count)

    def wait_for(self, total: int, timeout: float, alive: Any) -> bool:
        """Until ``total`` predictions were read (True) or ``timeout`` s (False)."""
        deadline = time.monotonic() + timeout
        while self.count < total:
            if time.monotonic() > deadline:
                return False
            alive()
            if self.process.poll() is not None:
                raise SystemExit(f"the predictions reader exited ({self.process.returncode})")
            time.sleep(0.02)
        return True

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Stop reading: (source partition and offset, arrival epoch s) of every prediction."""
        self.process.terminate()
        if self.process.wait(300):
            raise SystemExit(f"the predictions reader failed ({self.process.returncode})")
        self._follower.join(10)
        with np.load(self.out) as data:
            return data["sources"], data["arrivals"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# -- the load -------------------------------------------------------------------------------
class Load:
    """Dataset records looped, sent at a fixed rate; every send time noted."""

    def __init__(self, bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
        self.topic = topic
        self.messages = cycle(messages)
        self.producer = kp.make_producer(bootstrap, linger_ms=PRODUCER_LINGER_MS)
        self.phases: list[Sent] = []

    def send(self, phase: str, rate: float, seconds: float, until: Any = None) -> Sent:
        """``rate`` records/s for ``seconds`` (or until ``until()`` is true), then flush."""
        sent = Sent(phase, rate)
        futures = []
        send, topic, messages = self.producer.send, self.topic, self.messages
        start = time.perf_counter()
        total = int(rate * seconds)
        n = 0

        def more() -> bool:
            return not until() if until is not None else n < total

        while more():
            due = int((time.perf_counter() - start) * rate) + 1
            if until is None:
                due = min(due, total)
            while n < due:
                key, value = next(messages)
                sent.times.append(time.time())
                futures.append(send(topic, key=key, value=value))
                n += 1
            pause = n / rate - (time.perf_counter() - start)
            if pause > 0:
                time.sleep(pause)
        sent.seconds = time.perf_counter() - start
        self.producer.flush()
        for future in futures:
            metadata = future.get(timeout=60)
            sent.partitions.append(metadata.partition)
            sent.offsets.append(metadata.offset)
        self.phases.append(sent)
        return sent

    def burst(self, bootstrap: str, records: int) -> tuple[Sent, float]:
        """``records`` in one transaction; (what was sent, epoch s its commit returned)."""
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"bench-stream-burst-{uuid.uuid4().hex[:8]}",
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            transaction_timeout_ms=600_000,  # writing the burst may take minutes when busy
            **client_settings(),
        )
        sent = Sent("burst")
        try:
            producer.init_transactions()
            producer.begin_transaction()
            futures = []
            for _ in range(records):
                key, value = next(self.messages)
                futures.append(producer.send(self.topic, key=key, value=value))
            producer.flush()
            for future in futures:
                metadata = future.get(timeout=60)
                sent.partitions.append(metadata.partition)
                sent.offsets.append(metadata.offset)
            producer.commit_transaction()
            committed = time.time()
        finally:
            producer.close(timeout=10)
        sent.times = [committed] * records
        self.phases.append(sent)
        return sent, committed

    def total(self) -> int:
        return sum(len(p.offsets) for p in self.phases)

    def close(self) -> None:
        self.producer.close(timeout=10)


# -- one scorer under test --------------------------------------------------------------------
@dataclass
class BenchStage(Stage):
    """A supervisor Stage that also dies with this process (SIGKILL of the benchmark)."""

    die_with_parent: bool = True

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(
                f"{self.name} exited with code {self.process.returncode}: " + " | ".join(tail)
            )

    def cpu_seconds(self) -> float:
        """User+system CPU of the process and everything it started (Spark's JVM)."""
        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
        return total


@dataclass
class Settings:
    bootstrap: str
    partitions: int
    model_dir: Path
    set_dir: Path
    messages: list[tuple[bytes, bytes]]
    rates: list[float]
    seconds: float
    warmup_seconds: float
    burst_records: int
    start_timeout: float
    drain_timeout: float
    log_dir: Path
    work: Path


def command(system: str, interval: int, s: Settings, topics: dict[str, str]) -> list[str]:
    if system == "scorer":
        return [
            sys.executable, SCORER_SCRIPT, "--bootstrap-servers", s.bootstrap,
            "--topic", topics["in"], "--predictions-topic", topics["out"],
            "--alerts-topic", topics["alerts"], "--dead-letter-topic", topics["rejected"],
            "--group", topics["group"], "--model-dir", str(s.model_dir),
            "--commit-interval-ms", str(interval), "--follow",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "bench.stream_baselines", system, "--bootstrap-servers",
        s.bootstrap, "--input-topic", topics["in"], "--output-topic", topics["out"],
        "--set-dir", str(s.set_dir), "--group", topics["group"],
    ]  # fmt: skip


def run_system(system: str, interval: int, s: Settings, log: Any) -> RunResult:
    label = f"scorer, commit {interval} ms" if system == "scorer" else system
    tag = f"{system}-{uuid.uuid4().hex[:6]}"
    topics = {name: f"bench-stream-{tag}-{name}" for name in ("in", "out", "alerts", "rejected")}
    topics["group"] = f"bench-stream-{tag}"
    for name in ("in", "out", "alerts", "rejected"):
        kp.ensure_topic(s.bootstrap, topics[name], s.partitions)
    result = RunResult(label)
    with contextlib.ExitStack() as reading:
        recorder = Recorder(s.bootstrap, topics["out"], s.partitions, s.work)
        reading.callback(recorder.close)
        with contextlib.ExitStack() as running:
            load = Load(s.bootstrap, topics["in"], s.messages)
            running.callback(load.close)
            argv = command(system, interval, s, topics)
            stage = BenchStage(label, argv, s.log_dir / f"{tag}.log", ROOT)
            running.callback(stage.stop)
            stage.start()
            measure(system, result, s, recorder, load, stage, log)
        sources, arrivals = recorder.finish()
    analyse(result, load.phases, sources, arrivals)
    return result


def measure(
    system: str,
    result: RunResult,
    s: Settings,
    recorder: Recorder,
    load: Load,
    stage: BenchStage,
    log: Any,
) -> None:
    """Warm-up, each rate in turn (drained between), then the burst."""
    label = result.system
    started = time.monotonic()

    def first_or_late() -> bool:
        stage.check()
        return recorder.count > 0 or time.monotonic() - started > s.start_timeout

    load.send("warm-up", WARMUP_RATE, 0, until=first_or_late)
    if recorder.count == 0:
        raise SystemExit(f"{label}: no prediction within {s.start_timeout:.0f} s")
    log(f"{label}: first prediction after {time.monotonic() - started:.1f} s")
    load.send("warm-up", max(s.rates), s.warmup_seconds)
    recorder.wait_for(load.total(), s.drain_timeout, stage.check)
    for rate in s.rates:
        sent = load.send(f"{rate:g}/s", rate, s.seconds)
        drained = recorder.wait_for(load.total(), s.drain_timeout, stage.check)
        log(
            f"{label}: {len(sent.offsets):,} records at {rate:g}/s"
            + ("" if drained else " (not all predicted within the drain timeout)")
        )
    if s.burst_records and system != "bare":
        before = recorder.count
        _, committed = load.burst(s.bootstrap, s.burst_records)
        cpu = stage.cpu_seconds()
        done = recorder.wait_for(before + s.burst_records, s.drain_timeout * 5, stage.check)
        seconds = recorder.last_arrival - committed
        result.burst = BurstRow(label, s.burst_records, seconds, stage.cpu_seconds() - cpu, 0)
        log(
            f"{label}: burst of {s.burst_records:,} in {seconds:.1f} s"
            + ("" if done else " (not all predicted within the drain timeout)")
        )
    time.sleep(1)  # a duplicate, if any, has time to show


def _key(partitions: Any, offsets: Any) -> np.ndarray:
    return np.asarray(partitions, dtype=np.int64) << 40 | np.asarray(offsets, dtype=np.int64)


def analyse(result: RunResult, phases: list[Sent], sources: np.ndarray, arrivals: np.ndarray):
    """Match predictions to inputs: latencies per rate, missing and duplicate predictions."""
    out_keys = _key(sources[:, 0], sources[:, 1])
    order = np.argsort(arrivals, kind="stable")
    unique, first = np.unique(out_keys[order], return_index=True)
    first_arrival = dict(zip(unique.tolist(), arrivals[order][first].tolist(), strict=True))
    result.outputs = len(out_keys)
    result.duplicates = len(out_keys) - len(unique)
    for sent in phases:
        keys = _key(sent.partitions, sent.offsets).tolist()
        result.inputs += len(keys)
        latencies = []
        missing = 0
        for key, t in zip(keys, sent.times, strict=True):
            arrival = first_arrival.get(key)
            if arrival is None:
                missing += 1
            else:
                latencies.append(arrival - t)
        result.missing += missing
        if sent.phase == "burst" and result.burst is not None:
            result.burst.missing = missing
        if sent.phase.endswith("/s") and latencies:
            ms = np.array(latencies) * 1000
            result.latency.append(
                LatencyRow(
                    result.system,
                    sent.rate,
                    len(keys) / sent.seconds,
                    len(keys),
                    float(np.percentile(ms, 50)),
                    float(np.percentile(ms, 99)),
                    float(ms.max()),
                    missing,
                )
            )


# -- report ------------------------------------------------------------------------------------
def print_tables(
    results: list[RunResult], s: Settings, chosen: list[str], intervals: list[int], wall: float
) -> None:
    load = os.getloadavg()[0]
    print(
        f"\nOne private broker, {s.partitions} partitions per topic; model set"
        f" {s.set_dir.name}; the load: dataset records at a fixed rate by kafka-python"
        f" (acks=all, idempotent, linger.ms={PRODUCER_LINGER_MS}), {s.seconds:g} s per rate"
        f" after a warm-up; latency = send() called -> prediction read by a read_committed"
        f" consumer. {wall:.0f} s in all; load average {load:.1f} on {os.cpu_count()} cores.\n"
    )
    for system in chosen:
        text = DESCRIPTIONS[system].format(interval="/".join(str(i) for i in intervals))
        if system == "spark":
            connector = next(j.stem for j in spark_jars() if j.name.startswith("spark-sql-kafka"))
            text += f"; pyspark {version('pyspark')}, {connector}"
        print(f"- {system}: {text}")
    print("\n| system | records/s asked (sent) | records | p50 ms | p99 ms | max ms | missing |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for result in results:
        for row in result.latency:
            print(
                f"| {row.system} | {row.rate:,.0f} ({row.achieved:,.0f}) | {row.count:,}"
                f" | {row.p50_ms:,.1f} | {row.p99_ms:,.1f} | {row.max_ms:,.1f} | {row.missing} |"
            )
    bursts = [r.burst for r in results if r.burst]
    if bursts:
        print(
            "\nMost records/s of one process: a burst committed in one transaction, from the"
            " commit to the last prediction readable; CPU of the scorer's process tree (for"
            " Spark, its JVM) over that time.\n"
        )
        print(
            "| system | records | seconds | records/s | CPU s (all cores) | records per CPU s"
            " | missing |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for b in bursts:
            print(
                f"| {b.system} | {b.records:,} | {b.seconds:.2f} | {b.rate:,.0f}"
                f" | {b.cpu_seconds:.1f} | {b.records / max(b.cpu_seconds, 1e-9):,.0f}"
                f" | {b.missing} |"
            )
    print("\nEvery input against its predictions, whole run (warm-up included):\n")
    print("| system | inputs | predictions | duplicates | missing |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r.system} | {r.inputs:,} | {r.outputs:,} | {r.duplicates} | {r.missing} |")


def numbers(text: str, kind: type = float) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def systems(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in SYSTEMS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SYSTEMS)}, got {text!r}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_stream",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    parser.add_argument(
        "--rates", type=numbers, default=[200.0, 1000.0, 5000.0], help="records/s, in order"
    )
    parser.add_argument("--seconds", type=float, default=15, help="per rate (default 15)")
    parser.add_argument(
        "--warmup-seconds", type=float, default=5, help="at the highest rate, first (default 5)"
    )
    parser.add_argument(
        "--burst-records",
        type=int,
        default=200_000,
        help="records of the records/s run (default 200,000; 0 = skip it)",
    )
    parser.add_argument(
        "--systems", type=systems, default=list(SYSTEMS), help="default scorer,bare,spark"
    )
    parser.add_argument(
        "--commit-intervals-ms",
        type=lambda t: numbers(t, int),
        default=[50, 100],
        help="the scorer's --commit-interval-ms, one run each (default 50,100: what the"
        " interval costs)",
    )
    parser.add_argument("--partitions", type=int, default=3, help="per topic (default 3)")
    parser.add_argument(
        "--model-dir", default=env("MODEL_DIR"), help="newest set used; trained if none"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=300, help="s for a scorer's first prediction"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60, help="s for the predictions after a rate"
    )
    parser.add_argument(
        "--log-dir", type=Path, help="keep each scorer's log here (default: a temporary folder)"
    )
    add_kafka_config_flag(
        parser, "every client of the run connects with; the private broker must accept them"
    )
    args = parser.parse_args(argv)
    use_kafka_config(args.kafka_config)  # the scorers, baselines and reader inherit it
    if args.partitions < 1 or args.seconds <= 0 or args.burst_records < 0:
        parser.error("--partitions and --seconds must be positive, --burst-records >= 0")
    if "spark" in args.systems:
        spark_jars()  # says how to get the connector before anything starts
    if "scorer" in args.systems and not (ROOT / SCORER_SCRIPT).exists():
        raise SystemExit(f"{SCORER_SCRIPT} not found in {ROOT}")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    messages = [kp.encode(r) for r in read_dataset(DATASET).records]
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        work = Path(tmp)
        model_dir = model_dir_with_a_set(Path(args.model_dir), work)
        set_dir = registry.newest_set(model_dir)
        assert set_dir is not None
        broker = LocalKafka(
            work / "kafka",
            port=free_port(),
            controller_port=free_port(),
            num_partitions=args.partitions,
            die_with_parent=True,
        )
        broker.start()
        try:
            settings = Settings(
                broker.bootstrap_servers,
                args.partitions,
                model_dir,
                set_dir,
                messages,
                args.rates,
                args.seconds,
                args.warmup_seconds,
                args.burst_records,
                args.start_timeout,
                args.drain_timeout,
                args.log_dir or work,
                work,
            )
            for system in args.systems:
                for interval in args.commit_intervals_ms if system == "scorer" else [0]:
                    results.append(run_system(system, interval, settings, log))
        finally:
            broker.stop()
    print_tables(
        results, settings, args.systems, args.commit_intervals_ms, time.monotonic() - started
    )
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or scorer left running after SIGTERM/Ctrl-C
    raise SystemExit(main())
