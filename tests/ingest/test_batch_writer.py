"""Unit tests of the durable batch writer (no Kafka): atomic files, resume points, rejected/."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.contracts.records import RECORD_COLUMNS
from smarthome.ingest.batch_writer import (
    BatchWriter,
    batch_resume_offset,
    rejected_entry,
    rejected_path,
    rejected_resume_offset,
)

ROWS = [
    [1, "Smart Speaker", 15.30718848124909, 1.9616068166289793, 1, 4, 36, 1],
    [2, "Security System", 0.1 + 0.2, 8.610688921898104, 0, 0, 29, 0],
]


def test_batch_file_is_published_whole_with_header_and_exact_values(tmp_path: Path) -> None:
    writer = BatchWriter(tmp_path)
    path = writer.write_batch("t", 3, 10, 12, ROWS)
    assert path.parent == tmp_path
    assert list_batch_files(tmp_path) == [path]
    assert BatchName.parse(path.name) == BatchName(
        BatchName.parse(path.name).timestamp, "t", 3, 10, 12
    )
    assert list((tmp_path / ".tmp").iterdir()) == []  # nothing left behind
    frame = pd.read_csv(path, float_precision="round_trip")
    assert list(frame.columns) == RECORD_COLUMNS
    assert frame.values.tolist() == ROWS  # floats round-trip bit for bit


def test_resume_point_is_one_past_the_highest_end_offset_of_that_partition(tmp_path: Path) -> None:
    writer = BatchWriter(tmp_path)
    assert batch_resume_offset(tmp_path, "t", 0) == 0
    writer.write_batch("t", 0, 0, 99, ROWS)
    writer.write_batch("t", 0, 100, 249, ROWS)
    writer.write_batch("t", 1, 0, 999, ROWS)
    writer.write_batch("other", 0, 0, 5000, ROWS)
    (tmp_path / ".tmp" / "smart_home_batch_x_t+0+000000009999+000000009999.csv.1.tmp").touch()
    assert batch_resume_offset(tmp_path, "t", 0) == 250
    assert batch_resume_offset(tmp_path, "t", 1) == 1000
    assert batch_resume_offset(tmp_path, "t", 2) == 0


def test_crash_before_rename_publishes_nothing_and_after_rename_publishes_the_file(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        from smarthome.ingest.batch_writer import BatchWriter, crash_hooks_from_env
        w = BatchWriter({str(tmp_path)!r}, crash_hooks_from_env())
        w.write_batch("t", 0, 0, 1, {ROWS!r})
        w.write_batch("t", 0, 2, 3, {ROWS!r})
        """
    )
    root = Path(__file__).resolve().parents[2]
    for hook, expected_files in (("AFTER", 2), ("BEFORE", 1)):
        for path in list_batch_files(tmp_path):
            path.unlink()
        env = {**os.environ, f"SMARTHOME_TEST_CRASH_{hook}_RENAME": "2"}
        result = subprocess.run([sys.executable, "-c", script], cwd=root, env=env)
        assert result.returncode == 86
        assert len(list_batch_files(tmp_path)) == expected_files
        assert batch_resume_offset(tmp_path, "t", 0) == 2 * expected_files
    # the dead process's temporary file is cleaned by the next writer
    assert list((tmp_path / ".tmp").iterdir())
    BatchWriter(tmp_path)
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_rejected_file_format_and_resume_point(tmp_path: Path) -> None:
    writer = BatchWriter(tmp_path)
    assert rejected_resume_offset(tmp_path, "t", 0) == 0
    entries = [
        rejected_entry(4, b"not json", "record: not valid JSON (...)"),
        rejected_entry(7, b"\xff\xfe{", "record: not valid UTF-8 (invalid start byte)"),
        rejected_entry(9, None, "record: empty message"),
    ]
    assert writer.append_rejected("t", 0, entries) == 3
    lines = rejected_path(tmp_path, "t", 0).read_text("utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]
    assert parsed[0] == {"offset": 4, "value": "not json", "reason": "record: not valid JSON (...)"}
    assert parsed[1]["value"] is None
    assert base64.b64decode(parsed[1]["value_base64"]) == b"\xff\xfe{"
    assert parsed[2]["value"] is None and "value_base64" not in parsed[2]
    assert all(p["reason"] for p in parsed)
    assert rejected_resume_offset(tmp_path, "t", 0) == 10
    assert rejected_resume_offset(tmp_path, "t", 1) == 0


def test_torn_rejected_tail_is_cut_before_the_next_append(tmp_path: Path) -> None:
    writer = BatchWriter(tmp_path)
    big = "x" * 200_000  # longer than one tail-read chunk
    writer.append_rejected("t", 0, [rejected_entry(5, big.encode(), "too long")])
    path = rejected_path(tmp_path, "t", 0)
    with path.open("ab") as fh:
        fh.write(b'{"offset": 6, "val')  # a torn append
    assert rejected_resume_offset(tmp_path, "t", 0) == 6
    writer.append_rejected("t", 0, [rejected_entry(6, b"{}", "missing keys")])
    offsets = [json.loads(line)["offset"] for line in path.read_text("utf-8").splitlines()]
    assert offsets == [5, 6]
