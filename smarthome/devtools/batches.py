"""Batch files made straight from a CSV, for tests and benchmarks that skip Kafka.

They have the names and contents the consumer would publish for the same rows, one partition.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from smarthome.config import DEFAULTS
from smarthome.contracts.batch_files import batch_file_name
from smarthome.contracts.records import RECORD_COLUMNS

TOPIC = DEFAULTS["KAFKA_TOPIC"]
BATCHES = 6


def write_batches(
    dataset: Path, batch_dir: Path, parts: int = BATCHES, start_offset: int = 0
) -> list[Path]:
    """Write ``dataset``'s rows as ``parts`` consecutive batch files (names in publish order)."""
    frame = pd.read_csv(dataset)[RECORD_COLUMNS]
    batch_dir.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // parts)
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    paths = []
    for i in range(parts):
        chunk = frame.iloc[i * size : (i + 1) * size]
        start = start_offset + i * size
        end = start + len(chunk) - 1
        when = base + timedelta(seconds=start_offset + i)
        path = batch_dir / batch_file_name(TOPIC, 0, start, end, when)
        buffer = io.StringIO()
        chunk.to_csv(buffer, index=False, lineterminator="\n")
        path.write_text(buffer.getvalue(), encoding="utf-8")
        paths.append(path)
    return paths
