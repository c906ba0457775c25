"""Scale: 20,000 synthetic records, 3 partitions, 2 consumer processes in one group.

Every synthetic record (by UserID, with its exact values) must land in the batch files exactly
once, both consumer processes must have taken part, and one set trained on all the files
(the ``--latest-only`` path) must say it holds every row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.contracts.records import RECORD_COLUMNS
from smarthome.ingest.dataset import read_dataset
from smarthome.ingest.synthetic import synthetic_records
from tests.conftest import ROOT
from tests.helpers.consumer import start_consumer

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

N = 20_000
SEED = 11
PARTITIONS = 3


def expected_records(dataset_path: Path) -> pd.DataFrame:
    """The records ``kafka_producer.py --synthetic N --seed SEED`` sends (same generator)."""
    base = read_dataset(dataset_path).records
    return pd.DataFrame(list(synthetic_records(base, N, SEED)), columns=RECORD_COLUMNS)


def wait_for_members(bootstrap: str, group: str, members: int, procs: list[Any]) -> None:
    """Until the group is stable with every member, so both processes get partitions."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            try:
                info = admin.describe_groups([group])[group]
            except KafkaError:  # the group's coordinator is not ready before the first join
                info = {"group_state": "", "members": []}
            if info["group_state"] == "Stable" and len(info["members"]) == members:
                return
            time.sleep(0.2)
        raise AssertionError(f"group {group} never had {members} stable members")
    finally:
        admin.close()


def test_synthetic_stream_through_two_consumers_exactly_once_then_one_set_trains_on_it(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path, spark: Any
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = make_topic(PARTITIONS)
    group = f"scale-{topic}"
    batch_dir = tmp_path / "batches"
    logs = [tmp_path / "consumer0.log", tmp_path / "consumer1.log"]
    flags = [
        "--group", group, "--batch-size", "2500", "--max-batch-age", "2", "--idle-timeout", "6"
    ]  # fmt: skip
    consumers = [start_consumer(bootstrap, topic, batch_dir, *flags, log=log) for log in logs]
    try:
        wait_for_members(bootstrap, group, 2, consumers)
        produced = subprocess.run(
            [
                sys.executable,
                "kafka_producer.py",
                "--bootstrap-servers",
                bootstrap,
                "--topic",
                topic,
                "--synthetic",
                str(N),
                "--seed",
                str(SEED),
                "--no-progress",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )
        assert produced.returncode == 0, produced.stderr
        assert produced.stdout.strip().splitlines()[-1] == f"delivered {N}, failed 0"
        for proc, log in zip(consumers, logs, strict=True):
            assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        for proc in consumers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # both processes wrote records, and between them every partition
    outputs = [log.read_text() for log in logs]
    assert all("wrote 0 records" not in out for out in outputs), outputs
    files = list_batch_files(batch_dir)
    assert {BatchName.parse(p.name).partition for p in files} == set(range(PARTITIONS))

    # every synthetic record exactly once, with the values the producer sent
    got = pd.concat(
        [pd.read_csv(p, float_precision="round_trip") for p in files], ignore_index=True
    )
    assert list(got.columns) == RECORD_COLUMNS
    duplicated = got["UserID"][got["UserID"].duplicated()].tolist()
    assert not duplicated, f"{len(duplicated)} records twice, e.g. {duplicated[:5]}"
    want = expected_records(dataset_path)
    missing = sorted(set(want["UserID"]) - set(got["UserID"]))
    assert not missing, f"{len(missing)} records missing, e.g. {missing[:5]}"
    assert len(got) == N
    pd.testing.assert_frame_equal(
        got.set_index("UserID").sort_index(), want.set_index("UserID").sort_index()
    )

    # one set (--latest-only) on all the files holds every row
    from smarthome.training.config import TrainConfig
    from smarthome.training.runner import run_once

    model_dir = tmp_path / "models"
    published = run_once(
        spark,
        batch_dir,
        model_dir,
        TrainConfig(quick=True),
        latest_only=True,
        log=lambda _: None,
    )
    assert len(published) == 1 and published[0] == registry.newest_set(model_dir)
    manifest = json.loads((published[0] / registry.MANIFEST).read_text())
    assert manifest["rows"] == N and manifest["rows_skipped"] == 0
    assert manifest["set"] == len(files)
    assert manifest["batch_files"] == [p.name for p in files]
