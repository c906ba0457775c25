"""Batch file names (DESIGN §5): which records a file holds is in its name.

``smart_home_batch_<UTC yyyymmddTHHMMSSffffff>Z_<topic>+<partition>+<start>+<end>.csv``,
offsets zero-padded to 12 digits, so names sort in publish order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PREFIX = "smart_home_batch_"
BATCH_NAME = re.compile(
    r"^smart_home_batch_(?P<ts>\d{8}T\d{12})Z_(?P<topic>.+)\+(?P<partition>\d+)"
    r"\+(?P<start>\d{12,})\+(?P<end>\d{12,})\.csv$"
)


@dataclass(frozen=True)
class BatchName:
    timestamp: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int

    @classmethod
    def parse(cls, name: str) -> BatchName | None:
        match = BATCH_NAME.match(Path(name).name)
        if not match:
            return None
        return cls(
            match["ts"],
            match["topic"],
            int(match["partition"]),
            int(match["start"]),
            int(match["end"]),
        )


def batch_file_name(
    topic: str, partition: int, start: int, end: int, when: datetime | None = None
) -> str:
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{PREFIX}{when:%Y%m%dT%H%M%S%f}Z_{topic}+{partition}+{start:012d}+{end:012d}.csv"


def list_batch_files(batch_dir: Path | str) -> list[Path]:
    """Published batch files in publish (= file-name) order; temporary files are never listed."""
    root = Path(batch_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_file() and BATCH_NAME.match(p.name))
