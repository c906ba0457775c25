"""Scale: 100,000 / 300,000 / 1,000,000 synthetic records through producer -> consumers -> Spark.

Per size, in a private temp dir with a private broker (3 partitions, 512 MB heap):
1. ``kafka_producer.py --synthetic N`` alone: records/s (wall clock of the process) and peak
   RSS;
2. then two ``kafka_consumer_batch.py`` processes in one group, started together on the full
   topic: aggregate records/s (N / seconds from their start until the batch files hold all N
   records; the first member takes every partition, then the second joins and they rebalance,
   as in real use) and each one's peak RSS; ``--batch-size 50,000`` at every size (a consumer
   buffers up to that many records per partition, so its memory depends on the batch size,
   not on N) and ``--max-batch-age 1`` (a partition's partial batch is written within a
   second or two, instead of after the idle timeout);
3. the broker is stopped, then ``spark-submit --driver-memory 4g spark_training.py
   --latest-only`` trains one set on all the files: wall seconds (JVM start included), the
   set's own seconds from its manifest, and the peak RSS of the whole tree (launcher + driver
   JVM + Python driver).
Every figure is also shown as a ratio to the first (smallest) size: seconds per record and
peak RSS. Sizes: ``BENCH_SCALE_SIZES=100000,300000`` to run fewer. Peak RSS is sampled every
0.1 s (psutil), so it is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from smarthome.cli import add_kafka_config_flag
from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.model_sets import MANIFEST, newest_set
from smarthome.devtools.local_kafka import LocalKafka
from smarthome.devtools.peakmem import MB, PeakSampler
from smarthome.devtools.ports import free_port
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.devtools.workspace import venv_env
from smarthome.kafka_settings import use_kafka_config

ROOT = Path(__file__).resolve().parent.parent
SIZES = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "100000,300000,1000000").split(",")]
PARTITIONS = 3
CONSUMERS = 2
BATCH_SIZE = 50_000  # the same at every size (only N varies): 1M records -> ~21 files
IDLE_TIMEOUT = 5.0  # not timed: the consumers are timed until every record is on disk
MAX_BATCH_AGE = 1.0  # so the last partial batch of each partition is written within ~1-2 s
DRIVER_MEMORY = "4g"
TOPIC = "bench-scale"
SEED = 7


@dataclass
class Result:
    records: int
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_measured(cmd: list[str], log: Path, timeout: float) -> tuple[float, float, str]:
    """Run ``cmd`` to its end: (wall seconds, peak RSS MB of its process tree, each process's
    own peak MB as text, e.g. the driver JVM's and the Python driver's)."""
    with PeakSampler() as sampler, open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=venv_env())
        peak = sampler.watch(proc.pid)
        code = proc.wait(timeout=timeout)
        seconds = time.monotonic() - start
    if code:
        raise RuntimeError(f"{cmd[1]} exited {code}: {log.read_text()[-2000:]}")
    big = [(name, rss) for name, rss in peak.per_process.values() if rss >= 10 * MB]
    own = ", ".join(f"{name} {rss / MB:.0f}" for name, rss in big)
    return seconds, peak.total_mb, own


def produce(n: int, bootstrap: str, tmp: Path) -> tuple[float, float]:
    cmd = [
        sys.executable,
        "kafka_producer.py",
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        TOPIC,
        "--synthetic",
        str(n),
        "--seed",
        str(SEED),
        "--partitions",
        str(PARTITIONS),
        "--no-progress",
    ]
    seconds, rss, _ = run_measured(cmd, tmp / "producer.log", timeout=3600)
    last = (tmp / "producer.log").read_text().strip().splitlines()[-1]
    if last != f"delivered {n}, failed 0":
        raise RuntimeError(f"producer: {last}")
    return seconds, rss


def consume(n: int, bootstrap: str, batch_dir: Path, tmp: Path) -> tuple[float, list[float]]:
    """Two consumer processes in one group: (seconds until all N are on disk, peak RSS MB each)."""
    procs, peaks = [], []
    with PeakSampler() as sampler:
        start = time.monotonic()
        for i in range(CONSUMERS):
            cmd = [
                sys.executable,
                "kafka_consumer_batch.py",
                "--bootstrap-servers",
                bootstrap,
                "--topic",
                TOPIC,
                "--batch-dir",
                str(batch_dir),
                "--group",
                "bench-scale",
                "--batch-size",
                str(BATCH_SIZE),
                "--max-batch-age",
                str(MAX_BATCH_AGE),
                "--idle-timeout",
                str(IDLE_TIMEOUT),
                "--no-progress",
            ]
            out = open(tmp / f"consumer{i}.log", "wb")  # noqa: SIM115 - closed below
            procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out), out))
            peaks.append(sampler.watch(procs[-1][0].pid))
        seconds = 0.0
        while not seconds and any(proc.poll() is None for proc, _ in procs):
            if sum(_records_named(p) for p in list_batch_files(batch_dir)) >= n:
                seconds = time.monotonic() - start
            time.sleep(0.05)
        for proc, out in procs:
            code = proc.wait(timeout=3600)
            out.close()
            if code:
                raise RuntimeError(f"consumer exited {code}: see {out.name}")
    written = sum(_records_in(p) for p in list_batch_files(batch_dir))
    if written != n:
        raise RuntimeError(f"consumers wrote {written} records, expected {n}")
    return seconds, [p.total_mb for p in peaks]


def _records_named(path: Path) -> int:
    """Records a batch file holds, from the offsets in its name (no message is rejected here)."""
    name = BatchName.parse(path.name)
    return name.end_offset - name.start_offset + 1 if name else 0


def _records_in(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle) - 1


def train(batch_dir: Path, model_dir: Path, tmp: Path) -> tuple[float, float, str, dict]:
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[*]",
        "--driver-memory",
        DRIVER_MEMORY,
        "spark_training.py",
        "--batch-dir",
        str(batch_dir),
        "--model-dir",
        str(model_dir),
        "--latest-only",
    ]
    seconds, rss, own = run_measured(cmd, tmp / "training.log", timeout=7200)
    folder = newest_set(model_dir)
    if folder is None:
        raise RuntimeError(f"no set published: {(tmp / 'training.log').read_text()[-2000:]}")
    manifest = Manifest.read(folder / MANIFEST)
    return seconds, rss, own, manifest


def run_size(n: int) -> Result:
    result = Result(n)
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{n}-") as tmp_name:
        tmp = Path(tmp_name)
        broker = LocalKafka(
            tmp / "kafka",
            port=free_port(),
            controller_port=free_port(),
            num_partitions=PARTITIONS,
            die_with_parent=True,
        )
        broker.start()
        try:
            load = os.getloadavg()[0]
            p_s, p_rss = produce(n, broker.bootstrap_servers, tmp)
            print(f"  {n:,}: producer {p_s:.1f} s, {p_rss:.0f} MB", file=sys.stderr, flush=True)
            c_s, c_rss = consume(n, broker.bootstrap_servers, tmp / "batches", tmp)
            print(f"  {n:,}: consumers {c_s:.1f} s, {c_rss} MB", file=sys.stderr, flush=True)
        finally:
            broker.stop()
        files = len(list_batch_files(tmp / "batches"))
        t_s, t_rss, t_own, manifest = train(tmp / "batches", tmp / "models", tmp)
        print(f"  {n:,}: training {t_s:.1f} s, {t_rss:.0f} MB", file=sys.stderr, flush=True)
        if manifest.rows != n:
            raise RuntimeError(f"set has {manifest.rows} rows, expected {n}")
        accuracy = manifest.models.efficiency.metrics.accuracy
        result.figures = {
            "producer_s": p_s,
            "producer_rss": p_rss,
            "consumer_s": c_s,
            "consumer_rss": max(c_rss),
            "consumer_rss_min": min(c_rss),
            "train_s": t_s,
            "set_s": manifest.seconds,
            "train_rss": t_rss,
        }
        result.notes.append(
            f"{n:,}: {files} batch files, set accuracy {accuracy:.4f}, training peak MB "
            f"per process: {t_own}, "
            f"load average at start {load:.1f}, after {os.getloadavg()[0]:.1f}"
        )
    return result


def table(results: list[Result]) -> str:
    base = results[0]
    lines = [
        "| records | producer rec/s | producer peak MB | 2 consumers rec/s | consumer peak MB "
        "(each) | training s (wall / set) | training peak MB | s/record vs first: "
        "producer / consumers / training | peak MB vs first: producer / consumer / training |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        f, b = r.figures, base.figures

        def per(key: str, f: dict = f, b: dict = b, n: int = r.records) -> str:
            return f"{(f[key] / n) / (b[key] / base.records):.2f}"

        def mem(key: str, f: dict = f, b: dict = b) -> str:
            return f"{f[key] / b[key]:.2f}"

        lines.append(
            f"| {r.records:,} | {r.records / f['producer_s']:,.0f} | {f['producer_rss']:.0f} "
            f"| {r.records / f['consumer_s']:,.0f} "
            f"| {f['consumer_rss_min']:.0f} / {f['consumer_rss']:.0f} "
            f"| {f['train_s']:.1f} / {f['set_s']:.1f} | {f['train_rss']:.0f} "
            f"| {per('producer_s')} / {per('consumer_s')} / {per('train_s')} "
            f"| {mem('producer_rss')} / {mem('consumer_rss')} / {mem('train_rss')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_scale",
        description=__doc__.split("\n\n")[0],
        epilog="Takes about 10 minutes. BENCH_SCALE_SIZES=100000,300000 runs fewer sizes.",
    )
    add_kafka_config_flag(
        parser, "the producer and consumers connect with; the private broker must accept them"
    )
    use_kafka_config(parser.parse_args().kafka_config)  # the stages inherit KAFKA_CONFIG
    print(
        f"{PARTITIONS} partitions, {CONSUMERS} consumer processes in one group, "
        f"--batch-size {BATCH_SIZE:,}, spark-submit --driver-memory {DRIVER_MEMORY} "
        f"--latest-only; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n",
        flush=True,
    )
    results = []
    for n in SIZES:
        results.append(run_size(n))
    print(table(results))
    print()
    for r in results:
        print(f"- {r.notes[0]}")
    print(
        f"- peak RSS in MB ({MB:,} bytes), sampled every 0.1 s; load average now "
        f"{os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())
