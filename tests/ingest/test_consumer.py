"""The batch consumer against a real broker: round trip, malformed messages, a consumer group.

The helpers here are shared with ``test_consumer_crash.py``.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.contracts.records import RECORD_COLUMNS
from smarthome.ingest.batch_writer import rejected_path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "kafka_consumer_batch.py"
_TYPES = {c: int for c in RECORD_COLUMNS} | {
    "DeviceType": str,
    "UsageHoursPerDay": float,
    "EnergyConsumption": float,
}

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


# -- helpers (also used by test_consumer_crash.py) ------------------------------------------
def dataset_records(path: Path) -> list[dict[str, Any]]:
    """The dataset as typed records; floats parsed from their exact text."""
    with path.open(newline="") as fh:
        return [{k: _TYPES[k](v) for k, v in row.items()} for row in csv.DictReader(fh)]


def dataset_frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def message(record: dict[str, Any]) -> tuple[bytes, bytes]:
    """A record as DESIGN §3's Kafka message: key UserID as text, value UTF-8 JSON."""
    return str(record["UserID"]).encode(), json.dumps(record).encode()


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    rate: float = 0,
) -> list[tuple[int, int]]:
    """Send messages in order (idempotent, acks=all), every future checked; (partition, offset)s."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        futures = []
        started = time.monotonic()
        for i, (key, value) in enumerate(messages):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            futures.append(producer.send(topic, key=key, value=value))
        producer.flush(60)
        return [(m.partition, m.offset) for m in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()


def produce_in_background(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], rate: float
) -> threading.Thread:
    thread = threading.Thread(target=produce, args=(bootstrap, topic, messages, rate), daemon=True)
    thread.start()
    return thread


def group_for(topic: str) -> str:
    return f"batcher-{topic}"


def start_consumer(
    bootstrap: str,
    topic: str,
    batch_dir: Path,
    *flags: str,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """kafka_consumer_batch.py as a subprocess (what a user runs), output to ``log``.

    The group is private to the topic unless ``--group`` is given, so members killed by one
    test never delay another test's rebalance on the shared broker.
    """
    if "--group" not in flags:
        flags = (*flags, "--group", group_for(topic))
    out = open(log or os.devnull, "ab")  # noqa: SIM115 - closed with the process
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--batch-dir",
        str(batch_dir),
        "--no-progress",
        *flags,
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    out.close()
    return proc


def run_consumer(bootstrap: str, topic: str, batch_dir: Path, *flags: str, log: Path) -> str:
    """Run the consumer to its idle end; returns its output (assert it exited 0)."""
    proc = start_consumer(bootstrap, topic, batch_dir, *flags, log=log)
    assert proc.wait(timeout=240) == 0, log.read_text()
    return log.read_text()


def read_batches(batch_dir: Path) -> pd.DataFrame:
    """Every published batch file, in file-name order, with a ``_file`` column."""
    frames = []
    for path in list_batch_files(batch_dir):
        frame = pd.read_csv(path, float_precision="round_trip")
        assert list(frame.columns) == RECORD_COLUMNS, path.name
        frames.append(frame.assign(_file=path.name))
    if not frames:
        return pd.DataFrame(columns=[*RECORD_COLUMNS, "_file"])
    return pd.concat(frames, ignore_index=True)


def assert_exactly_once(batch_dir: Path, dataset: pd.DataFrame) -> pd.DataFrame:
    """Each dataset row is in the files once, with identical values; file ranges never overlap."""
    got = read_batches(batch_dir)
    dupes = got["UserID"][got["UserID"].duplicated()].tolist()
    assert not dupes, f"{len(dupes)} duplicated UserIDs, e.g. {dupes[:5]}"
    missing = sorted(set(dataset["UserID"]) - set(got["UserID"]))
    assert not missing, f"{len(missing)} UserIDs missing, e.g. {missing[:5]}"
    assert len(got) == len(dataset)
    by_id = got.drop(columns="_file").set_index("UserID").sort_index()
    pd.testing.assert_frame_equal(by_id, dataset.set_index("UserID").sort_index())
    ranges: dict[int, list[tuple[int, int]]] = {}
    for path in list_batch_files(batch_dir):
        name = BatchName.parse(path.name)
        assert name is not None
        ranges.setdefault(name.partition, []).append((name.start_offset, name.end_offset))
    for partition, spans in ranges.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start > end, f"partition {partition}: overlapping files {spans}"
    return got


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


# -- tests ----------------------------------------------------------------------------------
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
