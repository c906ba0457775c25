"""kafka_consumer_batch.py run as a user runs it, and what its batch files must hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from smarthome.contracts.batch_files import BatchName, list_batch_files
from smarthome.contracts.records import RECORD_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "kafka_consumer_batch.py"


def group_for(topic: str) -> str:
    return f"batcher-{topic}"


def consumer_command(bootstrap: str, topic: str, batch_dir: Path, *flags: str) -> list[str]:
    """The command line of kafka_consumer_batch.py on ``topic``, no progress bar.

    The group is private to the topic unless ``--group`` is given, so members killed by one
    test never delay another test's rebalance on the shared broker.
    """
    if "--group" not in flags:
        flags = (*flags, "--group", group_for(topic))
    return [
        sys.executable, str(SCRIPT),
        "--bootstrap-servers", bootstrap,
        "--topic", topic,
        "--batch-dir", str(batch_dir),
        "--no-progress",
        *flags,
    ]  # fmt: skip


def start_consumer(
    bootstrap: str,
    topic: str,
    batch_dir: Path,
    *flags: str,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """kafka_consumer_batch.py as a subprocess (what a user runs), output to ``log``
    (``consumer_command``'s command line)."""
    out = open(log or os.devnull, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        consumer_command(bootstrap, topic, batch_dir, *flags),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
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
