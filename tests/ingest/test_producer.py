"""kafka_producer.py against a real broker: content, --limit, bad rows, Ctrl-C, one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka.partitioner.default import murmur2

from smarthome.contracts.records import RECORD_COLUMNS, validate_record
from smarthome.devtools.ports import free_port
from smarthome.ingest.dataset import read_dataset
from smarthome.ingest.producer import paced, replay
from smarthome.ingest.synthetic import synthetic_records
from tests.helpers.topics import read_topic

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "kafka_producer.py"


def producer(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def csv_rows(path: Path) -> list[dict[str, Any]]:
    """The dataset as pandas reads it (exact floats), independently of the producer's reader."""
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in pd.read_csv(path, float_precision="round_trip").to_dict("records")
    ]


@pytest.mark.kafka
@pytest.mark.slow
def test_dataset_read_back_equals_rows(kafka_broker, make_topic, dataset_path: Path) -> None:
    topic = make_topic(2)
    result = producer("--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "delivered 5403, failed 0"

    messages = read_topic(kafka_broker.bootstrap_servers, topic, 5403)
    rows = csv_rows(dataset_path)
    assert len(messages) == len(rows) == 5403
    by_id = {}
    for message in messages:
        value = json.loads(message.value.decode("utf-8"))
        assert list(value) == RECORD_COLUMNS  # exactly the 8 keys, dataset order
        assert message.key.decode() == str(value["UserID"])
        # Kafka's default keyed partitioner (Java: toPositive(murmur2(key)) % partitions)
        assert message.partition == (murmur2(message.key) & 0x7FFFFFFF) % 2
        by_id[value["UserID"]] = (value, message.partition)
    assert {r["UserID"]: r for r in rows} == {uid: v for uid, (v, _) in by_id.items()}
    # native JSON types, not strings
    sample = by_id[rows[0]["UserID"]][0]
    assert isinstance(sample["UserID"], int) and isinstance(sample["UsageHoursPerDay"], float)
    assert {p for _, p in by_id.values()} == {0, 1}  # keys spread over both partitions


@pytest.mark.kafka
def test_limit_and_partitions(kafka_broker) -> None:
    topic = f"limit-{free_port()}"
    result = producer(
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic,
        "--limit", "150", "--partitions", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "delivered 150, failed 0"
    assert "created topic" in result.stderr and "3 partition" in result.stderr
    messages = read_topic(kafka_broker.bootstrap_servers, topic, 150)
    assert len(messages) == 150
    assert {m.partition for m in messages} <= {0, 1, 2}
    assert sorted(json.loads(m.value)["UserID"] for m in messages) == list(range(1, 151))


BAD_CSV = """\
UserID,DeviceType,UsageHoursPerDay,EnergyConsumption,UserPreferences,MalfunctionIncidents,DeviceAgeMonths,SmartHomeEfficiency
1,Camera,3.5,1.2,1,0,12,1
2,Camera,30.5,1.2,1,0,12,1
3,Toaster,3.5,1.2,1,0,12,0
4,Lights,3.5,,1,0,12,1
5,Thermostat,3.5,1.2,1,two,12,1
6,Lights,nan,1.2,0,0,12,1
7,Smart Speaker,0,0,0,0,0,0
8,Lights,1,2,0,0,3
9,Security System,24,7.25,1,3,59,1
"""


@pytest.mark.kafka
def test_bad_rows_reported_by_line_and_not_sent(kafka_broker, make_topic, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    topic = make_topic(1)
    result = producer(
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic,
        "--dataset", str(path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "delivered 3, failed 0"
    errors = result.stderr
    assert f"{path}:3: not sent: UsageHoursPerDay" in errors
    assert f"{path}:4: not sent: DeviceType" in errors
    assert f"{path}:5: not sent: EnergyConsumption: missing" in errors
    assert f"{path}:6: not sent: MalfunctionIncidents" in errors
    assert f"{path}:7: not sent: UsageHoursPerDay" in errors
    assert f"{path}:9: not sent: has 7 fields" in errors
    assert "6 invalid row(s) skipped" in errors
    messages = read_topic(kafka_broker.bootstrap_servers, topic, 3)
    assert sorted(json.loads(m.value)["UserID"] for m in messages) == [1, 7, 9]


@pytest.mark.kafka
def test_ctrl_c_flushes_and_prints_counts(kafka_broker, make_topic) -> None:
    topic = make_topic(1)
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--no-progress", "--loop", "--rate", "500",
         "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("delivered ") and last.endswith(", failed 0"), out
    delivered = int(last.split()[1].rstrip(","))
    assert delivered > 0
    assert "Traceback" not in err
    assert len(read_topic(kafka_broker.bootstrap_servers, topic, delivered)) == delivered


@pytest.mark.kafka
def test_synthetic_stream_is_deterministic_and_valid(kafka_broker, make_topic, dataset_path):
    topic = make_topic(2)
    result = producer(
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic,
        "--synthetic", "3000", "--seed", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "delivered 3000, failed 0"
    values = [json.loads(m.value) for m in read_topic(kafka_broker.bootstrap_servers, topic, 3000)]
    sent = {v["UserID"]: v for v in values}
    expected = list(synthetic_records(read_dataset(dataset_path).records, 3000, seed=7))
    assert sent == {r["UserID"]: r for r in expected}  # same seed, same records; unique IDs
    assert min(sent) > 5403  # fresh UserIDs, never a dataset row's


def test_synthetic_records_are_valid_and_seeded(dataset_path: Path) -> None:
    base = read_dataset(dataset_path).records
    records = list(synthetic_records(base, 20_000, seed=1))
    assert len({r["UserID"] for r in records}) == 20_000
    for record in records:
        assert validate_record(record) == record  # every noisy value within the schema
    assert records[:50] == list(synthetic_records(base, 50, seed=1))
    assert records[:50] != list(synthetic_records(base, 50, seed=2))
    # noise is small: per-device-type mean usage stays close to the dataset's
    for device in ("Camera", "Thermostat"):
        real = [r["UsageHoursPerDay"] for r in base if r["DeviceType"] == device]
        fake = [r["UsageHoursPerDay"] for r in records if r["DeviceType"] == device]
        assert abs(sum(real) / len(real) - sum(fake) / len(fake)) < 0.5


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 or result.stderr.startswith("usage:"), result.stderr
    for needle in needles:
        assert needle in lines[-1], result.stderr


def test_no_broker_is_one_line_error() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = producer("--bootstrap-servers", address, "--limit", "5", timeout=15)
    assert_one_line_error(result, f"no Kafka broker at {address}", "make kafka-up")


def test_missing_dataset_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = producer("--dataset", str(missing), timeout=15)
    assert_one_line_error(result, str(missing))


def test_unreadable_dataset_is_one_line_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"UserID,\xff\xfe\x00garbage\n")
    assert_one_line_error(producer("--dataset", str(binary), timeout=15), "not a UTF-8 CSV")
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("1,Camera,3.5,1.2,1,0,12,1\n")
    assert_one_line_error(producer("--dataset", str(headerless), timeout=15), "lacks column(s)")


@pytest.mark.parametrize(
    "flags",
    [
        ["--rate", "fast"],
        ["--limit", "-3"],
        ["--jitter-ms", "100", "10"],
        ["--bogus"],
        ["--synthetic", "10", "--loop"],
        ["--topic", "bad topic"],
    ],
)
def test_bad_flag_is_argparse_error(flags: list[str]) -> None:
    result = producer(*flags, timeout=15)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("kafka_producer.py: error:")


def test_dataset_reader_and_replay(dataset_path: Path) -> None:
    data = read_dataset(dataset_path)
    assert len(data.records) == 5403 and not data.invalid
    messages = [(str(i).encode(), b"v") for i in range(3)]
    assert [k for k, _ in replay(messages, limit=7, loop=True)] == [b"0", b"1", b"2"] * 2 + [b"0"]
    assert len(list(replay(messages, limit=7))) == 3
    assert len(list(paced(replay(messages, 10, True), rate=1000))) == 10
