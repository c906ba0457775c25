"""The batch consumer against a real broker: round trip, malformed messages, a consumer group."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.ingest.batch_writer import rejected_path
from tests.conftest import ROOT
from tests.helpers.consumer import (
    assert_exactly_once,
    group_for,
    read_batches,
    run_consumer,
    start_consumer,
)
from tests.helpers.records import (
    dataset_frame,
    dataset_records,
    message,
    produce,
    produce_in_background,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _wait_for_group(bootstrap: str, group: str, members: int, proc: subprocess.Popen) -> None:
    """Wait until the group is stable with ``members`` members (the new one has joined)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            info = admin.describe_groups([group])[group]
            if info["group_state"] == "Stable" and len(info["members"]) == members:
                return
            time.sleep(0.2)
        raise AssertionError(f"group {group} never had {members} stable members")
    finally:
        admin.close()


def test_round_trip_producer_to_files_equals_the_dataset_rows_exactly(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    topic = make_topic(1)
    producer = subprocess.run(
        [
            sys.executable,
            "kafka_producer.py",
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--topic",
            topic,
            "--dataset",
            str(dataset_path),
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert producer.returncode == 0, producer.stdout + producer.stderr
    out = run_consumer(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "batches",
        "--idle-timeout",
        "3",
        log=tmp_path / "consumer.log",
    )
    assert "wrote 5403 records in 6 batch files" in out and "rejected 0" in out, out
    got = read_batches(tmp_path / "batches")
    # one partition: the files in name order are the dataset in order, every column exact
    pd.testing.assert_frame_equal(got.drop(columns="_file"), dataset_frame(dataset_path))
    names = [BatchName.parse(p.name) for p in list_batch_files(tmp_path / "batches")]
    assert [(n.start_offset, n.end_offset) for n in names] == [
        (s, min(s + 999, 5402)) for s in range(0, 5403, 1000)
    ]
    # a second run finds nothing new: the committed offsets hold
    again = run_consumer(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "batches",
        "--idle-timeout",
        "2",
        log=tmp_path / "again.log",
    )
    assert "consumed 0 messages" in again, again
    # another group on the same folder skips what the files already hold (resume from disk)
    other = run_consumer(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "batches",
        "--idle-timeout",
        "2",
        "--group",
        f"another-{topic}",
        log=tmp_path / "other.log",
    )
    assert "wrote 0 records" in other, other
    assert len(list_batch_files(tmp_path / "batches")) == 6


def _malformed(records: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None, str]]:
    """200 bad messages of 8 kinds: (key, value, kind)."""
    base = records[0]
    kinds: list[tuple[str, Any]] = [
        ("not JSON", lambda i: b"{not json %d" % i),
        ("wrong type", lambda i: json.dumps({**base, "UsageHoursPerDay": f"{i} hours"}).encode()),
        (
            "missing key",
            lambda i: json.dumps({k: v for k, v in base.items() if k != "DeviceType"}).encode(),
        ),
        ("extra key", lambda i: json.dumps({**base, "UsageHourPerDay": i}).encode()),
        ("NaN", lambda i: json.dumps({**base, "EnergyConsumption": float("nan")}).encode()),
        ("not UTF-8", lambda i: b'{"UserID": %d, "DeviceType": "\xff\xfe"}' % i),
        ("out of range", lambda i: json.dumps({**base, "UsageHoursPerDay": 24.5 + i}).encode()),
        ("not an object", lambda i: json.dumps([i, "Camera"]).encode()),
    ]
    return [(b"bad", kinds[i % len(kinds)][1](i), kinds[i % len(kinds)][0]) for i in range(200)]


def test_malformed_messages_go_to_rejected_with_a_reason_and_valid_ones_to_files(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    topic = make_topic(1)
    records = dataset_records(dataset_path)
    bad = _malformed(records)
    messages: list[tuple[bytes | None, bytes | None]] = []
    bad_positions = []
    for i, record in enumerate(records):
        if i % 27 == 5 and len(bad_positions) < len(bad):
            bad_positions.append(len(messages))
            messages.append(bad[len(bad_positions) - 1][:2])
        messages.append(message(record))
    assert len(bad_positions) == 200
    offsets = produce(kafka_broker.bootstrap_servers, topic, messages)
    bad_offsets = [offsets[i][1] for i in bad_positions]
    batch_dir = tmp_path / "batches"
    out = run_consumer(
        kafka_broker.bootstrap_servers,
        topic,
        batch_dir,
        "--idle-timeout",
        "3",
        "--batch-size",
        "700",
        log=tmp_path / "consumer.log",
    )
    assert "wrote 5403 records" in out and "rejected 200" in out, out
    pd.testing.assert_frame_equal(
        read_batches(batch_dir).drop(columns="_file"), dataset_frame(dataset_path)
    )
    lines = rejected_path(batch_dir, topic, 0).read_text("utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["offset"] for e in entries] == bad_offsets
    for entry, (_, value, kind) in zip(entries, bad, strict=True):
        assert entry["reason"], entry
        if entry.get("value_base64"):
            assert base64.b64decode(entry["value_base64"]) == value
        else:
            assert entry["value"] == value.decode("utf-8")
        expected = {
            "not JSON": "not valid JSON",
            "wrong type": "UsageHoursPerDay",
            "missing key": "DeviceType: missing",
            "extra key": "UsageHourPerDay: unknown field",
            "NaN": "EnergyConsumption",
            "not UTF-8": "UTF-8",
            "out of range": "UsageHoursPerDay: must be less than or equal to 24",
            "not an object": "record",
        }[kind]
        assert expected in entry["reason"], (kind, entry)
    # read again by a fresh group: nothing is rejected twice
    run_consumer(
        kafka_broker.bootstrap_servers,
        topic,
        batch_dir,
        "--idle-timeout",
        "2",
        "--group",
        f"second-{topic}",
        log=tmp_path / "again.log",
    )
    assert len(rejected_path(batch_dir, topic, 0).read_text("utf-8").splitlines()) == 200


def test_two_consumers_in_one_group_split_three_partitions_exactly_once(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    topic = make_topic(3)
    bootstrap = kafka_broker.bootstrap_servers
    messages = [message(r) for r in dataset_records(dataset_path)]
    batch_dir = tmp_path / "batches"
    flags = ("--idle-timeout", "8", "--batch-size", "250", "--max-batch-age", "1")
    first = start_consumer(bootstrap, topic, batch_dir, *flags, log=tmp_path / "a.log")
    producer = produce_in_background(bootstrap, topic, messages[:2700], rate=1500)
    producer.join(timeout=60)
    # the second process joins mid-stream: a rebalance while records flow
    second = start_consumer(bootstrap, topic, batch_dir, *flags, log=tmp_path / "b.log")
    _wait_for_group(bootstrap, group_for(topic), members=2, proc=second)
    produce(bootstrap, topic, messages[2700:], rate=800)
    for proc, log in ((first, "a.log"), (second, "b.log")):
        assert proc.wait(timeout=240) == 0, (tmp_path / log).read_text()
    got = assert_exactly_once(batch_dir, dataset_frame(dataset_path))
    by_partition = got.assign(partition=got["_file"].map(lambda n: BatchName.parse(n).partition))
    assert sorted(by_partition["partition"].unique()) == [0, 1, 2]
    outputs = [(tmp_path / n).read_text() for n in ("a.log", "b.log")]
    assert all("wrote 0 records" not in out for out in outputs), outputs  # both did work


def test_slow_stream_rotates_by_age_and_ctrl_c_writes_what_is_buffered(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    topic = make_topic(1)
    bootstrap = kafka_broker.bootstrap_servers
    batch_dir = tmp_path / "batches"
    messages = [message(r) for r in dataset_records(dataset_path)]
    log = tmp_path / "consumer.log"
    flags = ("--follow", "--batch-size", "100000", "--max-batch-age", "1")
    proc = start_consumer(bootstrap, topic, batch_dir, *flags, log=log)
    produce(bootstrap, topic, messages[:3000], rate=1000)
    # far fewer records than --batch-size, yet files appear while the stream runs: by age
    deadline = time.monotonic() + 60
    while not list_batch_files(batch_dir):
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.1)
    produce(bootstrap, topic, messages[3000:])
    proc.send_signal(signal.SIGINT)  # Ctrl-C: write the buffer, commit, close, exit 130
    assert proc.wait(timeout=60) == 130, log.read_text()
    written = int(log.read_text().split(" wrote ")[1].split()[0])
    assert written > 0
    # whatever the interrupted run had not read yet, the next run reads; nothing twice
    out = run_consumer(bootstrap, topic, batch_dir, "--idle-timeout", "2", log=tmp_path / "2.log")
    assert f"wrote {5403 - written} records" in out, out
    assert "skipped" not in out, "the interrupted run did not commit what it wrote"
    assert_exactly_once(batch_dir, dataset_frame(dataset_path))
