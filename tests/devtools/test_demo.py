"""`make demo` end to end: the whole pipeline live, a set on every record, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

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


_STAGES = {"kafka_producer.py", "kafka_consumer_batch.py", "spark_training.py"}
_STAGES |= {"kafka_stream_predict.py", "app_api.py", "streamlit"}


def _note_logins(state: Path, seen: dict[str, tuple[str | None, str | None]]) -> None:
    """Each running stage of the demo in ``state``: the --kafka-config file it was given (by
    name) and the KAFKA_CONFIG it was started with."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        try:
            environ = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if len(cmd) < 3 or environ.get("BATCH_DIR") != str(state / "batched_data"):
            continue
        script = cmd[2] if cmd[1] == "-m" else Path(cmd[1]).name
        if script in _STAGES:
            login = cmd[cmd.index("--kafka-config") + 1] if "--kafka-config" in cmd else None
            seen[script] = (login and Path(login).name, environ.get("KAFKA_CONFIG"))


def _api_while_running(
    api_port: int, demo: Future[str], state: Path, logins: dict
) -> tuple[dict, str]:
    """GET /pipeline and GET /metrics of the demo's API once its look at Kafka shows every
    record (or the last answers before the demo stopped); ``logins`` gets each stage's."""
    api = f"http://127.0.0.1:{api_port}"
    pipeline: dict = {}
    metrics = ""
    while not demo.done():
        _note_logins(state, logins)
        try:
            pipeline = requests.get(f"{api}/pipeline", timeout=5).json()
            metrics = requests.get(f"{api}/metrics", timeout=5).text
        except (requests.RequestException, ValueError):
            pass  # not up yet
        kafka, scorer = pipeline.get("kafka") or {}, pipeline.get("scorer") or {}
        if kafka.get("records_in_topic") == 5403 and scorer.get("reachable"):
            break
        time.sleep(0.5)
    return pipeline, metrics


def test_demo_on_a_secured_three_node_kafka_cluster(java_available: None, tmp_path: Path) -> None:
    from smarthome.devtools import kafka_security
    from smarthome.devtools.ports import free_base_port

    state = tmp_path / "demo3"
    base = free_base_port(3)
    # one batch file, so one set: the cluster is what this test is about, not the sets
    ports = [base, base + 1, free_port(), free_port()]
    with ThreadPoolExecutor(max_workers=1) as pool:
        demo = pool.submit(
            _run_demo, state, ports, "BROKERS=3", "SECURE=1",
            extra="--batch-size 6000 --max-batch-age 2",
        )  # fmt: skip
        logins: dict[str, tuple[str | None, str | None]] = {}
        pipeline, metrics = _api_while_running(ports[2], demo, state, logins)
        output = demo.result()
    cluster = ",".join(f"localhost:{base + 2 * i}" for i in range(3))
    assert f"started a local 3-node Kafka cluster at {cluster} (secured" in output, output[-3000:]
    assert "producer done: 5403 records" in output
    assert re.search(r"API serves model set \S+_set\d{4} trained on 5403 rows", output), output
    kafka_dir = state / ".run" / "kafka-cluster"
    assert len(list(kafka_dir.glob("node*/kraft-logs"))) == 3
    assert _processes_of(state) == []
    # each stage logged in as its own principal (SASL_SSL is the brokers' only listener; the
    # producer may be done before it is seen), none inherited a login (admin's, the demo's)
    if "kafka_producer.py" in logins:
        assert logins.pop("kafka_producer.py") == ("producer.properties", ""), logins
    assert logins == {
        "kafka_consumer_batch.py": ("consumer.properties", ""),
        "kafka_stream_predict.py": ("scorer.properties", ""),
        "app_api.py": ("viewer.properties", ""),
        "spark_training.py": (None, ""),
        "streamlit": (None, ""),
    }
    # the API's viewer login reads the topic's offsets and both groups (its ACLs suffice)
    assert pipeline["kafka"]["reachable"] is True, pipeline
    assert pipeline["kafka"]["records_in_topic"] == 5403, pipeline
    assert pipeline["scorer"]["reachable"] is True, pipeline
    # no password in anything the demo wrote or the API answers
    passwords = kafka_security.passwords(kafka_dir / "secure")
    assert set(passwords) == {*kafka_security.PRINCIPALS, kafka_security.BROKER}
    logs = [*(state / "logs").glob("*.log"), *(kafka_dir / "logs").glob("*.log")]
    assert {p.name for p in logs} >= {f"{s}.log" for s in ("producer", "consumer", "scorer", "api")}
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts |= {"demo output": output, "GET /pipeline": json.dumps(pipeline), "/metrics": metrics}
    assert metrics, "GET /metrics answered nothing"
    for where, text in texts.items():
        leaked = [name for name, password in passwords.items() if password in text]
        assert not leaked, f"{where} holds the password of {leaked}"
