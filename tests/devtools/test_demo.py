"""`make demo` end to end: the whole pipeline live, a set on every record, nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psutil
import pytest

from smarthome.devtools.ports import free_port
from tests.conftest import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def _processes_of(state: Path) -> list[str]:
    """Processes whose command line or environment points into the demo's state folder."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if str(state) in cmdline or any(str(state) in v for v in environ.values()):
            found.append(f"{proc.pid}: {cmdline[:120]}")
    return found


def _run_demo(state: Path, ports: list[int], *make_vars: str, extra: str = "") -> str:
    kafka, controller, api, ui = ports
    args = (
        f"--exit-when-trained --state-dir {state} --kafka-port {kafka} "
        f"--kafka-controller-port {controller} --api-port {api} "
        f"--ui-port {ui} --rate 0 --timeout 600 {extra}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MODEL_", "BATCH_"))}
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"DEMO_ARGS={args}", *make_vars],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def test_demo_trains_on_every_record_serves_a_prediction_and_leaves_nothing_running(
    java_available: None, tmp_path: Path
) -> None:
    state = tmp_path / "demo"
    ports = [free_port() for _ in range(4)]

    first = _run_demo(state, ports)
    assert "producer done: 5403 records" in first
    assert re.search(r"API serves model set \S+_set\d{4} trained on 5403 rows", first), first
    prediction = re.search(r"prediction: (\{.*\})", first)
    assert prediction and "'predicted_efficiency_class'" in prediction.group(1)
    assert "http://localhost:" in first  # the URLs a person opens
    for stage in ("producer", "consumer", "training", "scorer", "api", "ui"):
        assert (state / "logs" / f"{stage}.log").is_file()
    assert _processes_of(state) == []
    sets_after_first = sorted(p.name for p in (state / "spark_models").glob("*_set*"))
    # 5,403 records in batches of 1,000: the newest is set 6; the watch keeps up with the
    # stream (--latest-only), so it may skip sets in between, never train an older one later
    numbers = [int(name.rsplit("_set", 1)[1]) for name in sets_after_first]
    assert numbers[-1] == 6 and numbers == sorted(set(numbers)), sets_after_first

    # A second run resumes: nothing re-sent, nothing re-trained, the same set served.
    second = _run_demo(state, ports)
    assert "already holds 5403 records: resuming" in second
    assert f"API serves model set {sets_after_first[-1]} trained on 5403 rows" in second
    assert sorted(p.name for p in (state / "spark_models").glob("*_set*")) == sets_after_first
    assert _processes_of(state) == []


def test_demo_on_a_three_node_kafka_cluster(java_available: None, tmp_path: Path) -> None:
    from smarthome.devtools.ports import free_base_port

    state = tmp_path / "demo3"
    base = free_base_port(3)
    # one batch file, so one set: the cluster is what this test is about, not the sets
    ports = [base, base + 1, free_port(), free_port()]
    output = _run_demo(state, ports, "BROKERS=3", extra="--batch-size 6000 --max-batch-age 2")
    cluster = ",".join(f"localhost:{base + 2 * i}" for i in range(3))
    assert f"started a local 3-node Kafka cluster at {cluster}" in output, output[-3000:]
    assert "producer done: 5403 records" in output
    assert re.search(r"API serves model set \S+_set\d{4} trained on 5403 rows", output), output
    assert len(list((state / ".run" / "kafka-cluster").glob("node*/kraft-logs"))) == 3
    assert _processes_of(state) == []
