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
    """The parts of a batch file name: the consumer writes it, training and tools parse it."""

    timestamp: str  # UTC yyyymmddTHHMMSSffffff
    topic: str
    partition: int
    start_offset: int
    end_offset: int

    @classmethod
    def new(
        cls, topic: str, partition: int, start: int, end: int, when: datetime | None = None
    ) -> BatchName:
        when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
        return cls(f"{when:%Y%m%dT%H%M%S%f}", topic, partition, start, end)

    @property
    def file_name(self) -> str:
        return (
            f"{PREFIX}{self.timestamp}Z_{self.topic}+{self.partition}"
            f"+{self.start_offset:012d}+{self.end_offset:012d}.csv"
        )

    @classmethod
    def parse(cls, name: str) -> BatchName | None:
        """The parts of ``name`` (a path is fine), None if it is not a batch file name."""
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
    """The name of a new batch file holding offsets ``start..end`` of one partition."""
    return BatchName.new(topic, partition, start, end, when).file_name


def list_batch_files(batch_dir: Path | str) -> list[Path]:
    """Published batch files in publish (= file-name) order; temporary files are never listed."""
    root = Path(batch_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_file() and BATCH_NAME.match(p.name))
