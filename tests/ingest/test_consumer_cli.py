"""kafka_consumer_batch.py's command line without a broker: one-line errors, fast."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from smarthome.contracts.records import RecordError
from smarthome.devtools.ports import free_port
from smarthome.ingest.consumer import parse_row

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "kafka_consumer_batch.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_no_broker_waits_then_is_one_line_naming_it_and_how_to_start_one(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = _run(
        "--bootstrap-servers", address, "--batch-dir", str(tmp_path / "b"), "--broker-wait", "4"
    )
    took = time.monotonic() - started
    assert 4 <= took < 30, took
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 2, result.stderr  # "waiting for a Kafka broker ..." then the error
    assert lines[0].startswith(f"waiting for a Kafka broker at {address} (up to 4 s")
    assert address in lines[1] and "make kafka-up" in lines[1] and "--broker-wait" in lines[1]


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for args, expected in (
        (("--batch-size", "0"), "--batch-size must be > 0"),
        (("--max-batch-age", "soon"), "--max-batch-age must be a number"),
        (("--batch-dir", str(a_file)), "is a file, not a folder"),
    ):
        result = _run(*args)
        assert result.returncode == 2, result
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_help_names_every_flag() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for flag in (
        "--bootstrap-servers",
        "--topic",
        "--batch-dir",
        "--broker-wait",
        "--group",
        "--batch-size",
        "--max-batch-age",
        "--idle-timeout",
        "--follow",
        "--no-progress",
    ):
        assert flag in result.stdout


def test_parse_row_keeps_column_order_and_names_the_reason() -> None:
    raw = (
        b'{"SmartHomeEfficiency": 1, "UserID": 7, "DeviceType": "Lights", '
        b'"UsageHoursPerDay": 1, "EnergyConsumption": 0.5, "UserPreferences": 0, '
        b'"MalfunctionIncidents": 2, "DeviceAgeMonths": 3}'
    )
    assert parse_row(raw) == [7, "Lights", 1.0, 0.5, 0, 2, 3, 1]
    for bad, reason in (
        (None, "empty message"),
        (b"\xff{}", "not valid UTF-8"),
        (raw.replace(b'"Lights"', b'"Toaster"'), "DeviceType"),
    ):
        try:
            parse_row(bad)
        except RecordError as exc:
            assert reason in str(exc), (bad, str(exc))
        else:
            raise AssertionError(f"{bad!r} was accepted")
