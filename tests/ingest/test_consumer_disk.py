"""The batch consumer on a full disk: one line naming the folder, non-zero exit, nothing lost.

A real broker and a real filesystem that fills up: a 128 KiB tmpfs (mounting needs root, as
in CI) holds about a third of the dataset's batch files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.ingest.batch_writer import batch_resume_offset
from tests.conftest import require
from tests.helpers.consumer import (
    SCRIPT,
    assert_exactly_once,
    consumer_command,
    group_for,
    run_consumer,
)
from tests.helpers.records import dataset_frame, dataset_records, message, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SMALL_DISK = "128k"
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2}
#: messages the consumer rejects, so the rejected files are written on the full disk too
BAD = [(b"bad", b"{not json"), (b"bad", b'{"UserID": 1}'), (b"bad", b"\xff\xfe")]


def _committed(bootstrap: str, group: str) -> dict[int, int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


def _rejected_offsets(batch_dir: Path) -> list[tuple[str, int]]:
    found = []
    for path in sorted((batch_dir / "rejected").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            found.append((path.stem, json.loads(line)["offset"]))
    return found


def test_a_full_disk_ends_the_consumer_in_one_line_and_a_rerun_loses_nothing(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    require(os.geteuid() == 0, "root (to mount a small tmpfs)")
    bootstrap = kafka_broker.bootstrap_servers
    topic = make_topic(2)
    records = [message(r) for r in dataset_records(dataset_path)]
    third = len(records) // 3
    produce(bootstrap, topic, records[:third] + BAD[:2] + records[third:] + BAD[2:])
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", small], check=True)
    try:
        full = subprocess.run(
            consumer_command(bootstrap, topic, small, "--batch-size", "500", "--idle-timeout", "3"),
            cwd=SCRIPT.parent,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert full.returncode != 0, full.stdout + full.stderr
        assert "Traceback" not in full.stderr, full.stderr
        lines = full.stderr.splitlines()
        assert len(lines) == 1, full.stderr
        said = re.fullmatch(
            rf"kafka_consumer_batch\.py: error: no space left in {re.escape(str(small))}/ "
            r"\(([\d.]+) (B|KiB|MiB) free\): free some space and run it again; nothing was "
            r"lost, the records not yet in a file will be read again",
            lines[0],
        )
        assert said, lines[0]
        free = shutil.disk_usage(small).free
        shown = float(said[1]) * UNITS[said[2]]
        assert abs(shown - free) <= UNITS[said[2]] / 2, (lines[0], free)
        published = list_batch_files(small)
        assert published, "the disk filled before any batch file: the test proves nothing"
        assert not list((small / ".tmp").iterdir()), "the partial temp file was left behind"
        # no offset committed past what the files hold
        committed = _committed(bootstrap, group_for(topic))
        for partition, offset in committed.items():
            assert offset <= batch_resume_offset(small, topic, partition), (partition, committed)
        for path in published:  # every published file is whole
            name = BatchName.parse(path.name)
            assert name is not None
            assert path.read_bytes().endswith(b"\n"), path.name
        # what a user does next: the folder moves to a disk with room
        shutil.copytree(small, big)
    finally:
        subprocess.run(["umount", small], check=True)
    out = run_consumer(
        bootstrap, topic, big, "--batch-size", "500", "--idle-timeout", "3", log=tmp_path / "log"
    )
    assert "rejected" in out, out
    assert_exactly_once(big, dataset_frame(dataset_path))
    rejected = _rejected_offsets(big)
    assert len(rejected) == len(BAD) == len(set(rejected)), rejected
