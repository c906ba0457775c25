"""Seconds for one model set on ``local[2]`` versus a standalone cluster of 2 workers x 1 core.

Same batches (the full dataset as 6 files), same full configuration, same run, alternating
local / cluster so that a change in the machine's load hits both: ``spark-submit
spark_training.py --latest-only`` wall-clock (JVMs and executors started included) and the
set's own ``seconds`` from its manifest (reading, fitting, saving, publishing).

    python -m bench.bench_spark_cluster [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smarthome.devtools.processes import stop_children_at_exit

ROOT = Path(__file__).resolve().parent.parent

from bench.bench_training import SPARK_SUBMIT, venv_env  # noqa: E402
from smarthome.config import env  # noqa: E402
from smarthome.contracts import model_sets as registry  # noqa: E402
from smarthome.contracts.manifest import Manifest  # noqa: E402
from smarthome.devtools.batches import write_batches  # noqa: E402
from smarthome.devtools.ports import free_port  # noqa: E402
from smarthome.devtools.spark import LocalSparkCluster  # noqa: E402


def one_set(master: str, batch_dir: Path, model_dir: Path, quick: bool) -> tuple[float, float]:
    """(spark-submit wall seconds, the set's manifest seconds)."""
    args = ["--batch-dir", str(batch_dir), "--model-dir", str(model_dir), "--latest-only"]
    start = time.perf_counter()
    subprocess.run(
        [str(SPARK_SUBMIT), "--master", master, "spark_training.py", *args]
        + (["--quick"] if quick else []),
        cwd=ROOT,
        env={**venv_env(), "SPARK_LOCAL_IP": "127.0.0.1"},
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    (folder,) = registry.list_sets(model_dir)
    return wall, Manifest.read(folder / registry.MANIFEST).seconds


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_spark_cluster")
    parser.add_argument("--rounds", type=int, default=1, help="local+cluster pairs (default 1)")
    parser.add_argument("--quick", action="store_true", help="small models (smoke test)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_spark_cluster_"))
    batch_dir = work / "batches"
    write_batches(ROOT / env("DATASET_PATH"), batch_dir)
    cluster = LocalSparkCluster(
        work / "spark", workers=2, port=free_port(), ui_port=free_port(), die_with_parent=True
    )
    start = time.perf_counter()
    cluster.start()
    cluster_start = time.perf_counter() - start
    runs: dict[str, list[tuple[float, float]]] = {"local[2]": [], cluster.master_url: []}
    try:
        for round_ in range(args.rounds):
            for master, results in runs.items():
                kind = "local" if master.startswith("local") else "cluster"
                model_dir = work / f"models-{round_}-{kind}"
                results.append(one_set(master, batch_dir, model_dir, args.quick))
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    config = "quick" if args.quick else "full"
    print(f"| one set, 5,403 rows, {config} configuration | spark-submit s | set s |")
    print("|---|---|---|")
    labels = ["local[2] (one JVM)", "standalone, 2 workers x 1 core"]
    for results, label in zip(runs.values(), labels, strict=True):
        walls = ", ".join(f"{w:.1f}" for w, _ in results)
        sets = ", ".join(f"{s:.1f}" for _, s in results)
        print(f"| {label} | {walls} | {sets} |")
    local, remote = runs.values()
    ratio = sum(s for _, s in remote) / sum(s for _, s in local)
    print(f"\ncluster / local (set seconds): {ratio:.2f}; cluster start: {cluster_start:.1f} s")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())
