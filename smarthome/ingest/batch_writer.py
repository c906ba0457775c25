"""Durable batch files and rejected records: what makes the consumer exactly-once (DESIGN §5).

Every write here is whole or absent after a crash:

* a batch file is written under ``<batch_dir>/.tmp/``, flushed and fsynced, renamed into place
  (atomic on one filesystem), and the directory fsynced, so a published name always holds a
  complete file; a write that fails (a full disk) removes its temporary file;
* rejected messages are appended to ``<batch_dir>/rejected/<topic>+<partition>.jsonl`` as one
  JSON line each (``offset``, ``value``, ``reason``, plus ``value_base64`` when the bytes were
  not UTF-8), fsynced; an append that fails is cut off again.

The resume points are read back from disk, never from memory: ``batch_resume_offset`` is one
past the highest end offset in the batch file names of a topic+partition, and
``rejected_resume_offset`` is one past the highest offset in its rejected file. The consumer
never writes a record at or below them again, whatever offset Kafka has committed.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from smarthome.contracts.batch_files import BatchName, batch_file_name, list_batch_files
from smarthome.contracts.records import RECORD_COLUMNS

TMP_DIR = ".tmp"
REJECTED_DIR = "rejected"
_TAIL_CHUNK = 64 * 1024


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (POSIX needs the directory fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def batch_resume_offset(batch_dir: Path | str, topic: str, partition: int) -> int:
    """One past the highest end offset among published batch files of topic+partition (or 0)."""
    best = -1
    for path in list_batch_files(batch_dir):
        name = BatchName.parse(path.name)
        if name and name.topic == topic and name.partition == partition:
            best = max(best, name.end_offset)
    return best + 1


def rejected_path(batch_dir: Path | str, topic: str, partition: int) -> Path:
    return Path(batch_dir) / REJECTED_DIR / f"{topic}+{partition}.jsonl"


def _last_complete_line(path: Path) -> tuple[bytes | None, int]:
    """The last newline-terminated line of a file and the byte length up to its newline.

    Bytes after the last newline (a torn append from a power cut) are not part of the answer:
    the returned length is where the good part of the file ends.
    """
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        buf = b""
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            last_nl = buf.rfind(b"\n")
            if last_nl < 0:
                continue
            prev_nl = buf.rfind(b"\n", 0, last_nl)
            if prev_nl >= 0 or pos == 0:
                return buf[prev_nl + 1 : last_nl], pos + last_nl + 1
    return None, 0


def rejected_resume_offset(batch_dir: Path | str, topic: str, partition: int) -> int:
    """One past the offset of the last rejected entry of topic+partition (or 0).

    A torn last line is cut off first, so the next append starts on a fresh line.
    """
    path = rejected_path(batch_dir, topic, partition)
    if not path.exists():
        return 0
    line, good_length = _last_complete_line(path)
    if good_length != path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(good_length)
            os.fsync(fh.fileno())
    if not line:
        return 0
    return int(json.loads(line)["offset"]) + 1


def rejected_entry(offset: int, raw: bytes | None, reason: str) -> dict[str, Any]:
    """One rejected-file entry: the raw value as text, or base64 when it is not UTF-8."""
    entry: dict[str, Any] = {"offset": offset}
    try:
        entry["value"] = None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["value"] = None
        entry["value_base64"] = base64.b64encode(raw).decode("ascii")
    entry["reason"] = reason
    return entry


class BatchWriter:
    """Writes batch files and rejected entries for one batch folder, durably."""

    def __init__(self, batch_dir: Path | str, test_hooks: dict[str, int] | None = None):
        self.batch_dir = Path(batch_dir)
        self.tmp_dir = self.batch_dir / TMP_DIR
        self.rejected_dir = self.batch_dir / REJECTED_DIR
        for folder in (self.batch_dir, self.tmp_dir, self.rejected_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._hooks = test_hooks or {}
        self.renames = 0
        self._remove_stale_tmp()

    def _remove_stale_tmp(self) -> None:
        """Drop temporary files of processes that died before renaming them."""
        for path in self.tmp_dir.glob("*.tmp"):
            try:
                pid = int(path.suffixes[-2].lstrip("."))
                os.kill(pid, 0)
            except (ValueError, IndexError, ProcessLookupError):
                path.unlink(missing_ok=True)
            except PermissionError:
                pass  # a live process of another user owns it

    def write_batch(
        self,
        topic: str,
        partition: int,
        start: int,
        end: int,
        rows: Sequence[Sequence[Any]],
        sync_dir: bool = True,
    ) -> Path:
        """Publish one batch file atomically and durably; returns its final path.

        ``sync_dir=False`` leaves the folder's fsync to a later ``sync_dir()`` call, so several
        files can share one; the rename is durable only after it.
        """
        name = batch_file_name(topic, partition, start, end)
        final = self.batch_dir / name
        tmp = self.tmp_dir / f"{name}.{os.getpid()}.tmp"
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        out.writerow(RECORD_COLUMNS)
        out.writerows(rows)
        try:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                fh.write(text.getvalue())
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:  # a full disk, say: leave no partial file taking its space
            tmp.unlink(missing_ok=True)
            raise
        self._maybe_crash("SMARTHOME_TEST_CRASH_BEFORE_RENAME", self.renames + 1)
        os.replace(tmp, final)
        if sync_dir:
            self.sync_dir()
        self.renames += 1
        self._maybe_crash("SMARTHOME_TEST_CRASH_AFTER_RENAME", self.renames)
        return final

    def sync_dir(self) -> None:
        """fsync the batch folder: every rename done so far survives a power cut."""
        fsync_dir(self.batch_dir)

    def append_rejected(self, topic: str, partition: int, entries: Iterable[dict[str, Any]]) -> int:
        """Append rejected entries as JSON lines in one write, fsynced; returns how many."""
        lines = [json.dumps(e, ensure_ascii=False) + "\n" for e in entries]
        if not lines:
            return 0
        path = rejected_path(self.batch_dir, topic, partition)
        new = not path.exists()
        data = memoryview("".join(lines).encode("utf-8"))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            good_length = os.fstat(fd).st_size
            try:
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            except OSError:  # a full disk, say: cut what made it in, the batch is redone
                os.ftruncate(fd, good_length)
                raise
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.rejected_dir)
        return len(lines)

    def _maybe_crash(self, hook: str, count: int) -> None:
        """Test hook: die like SIGKILL (no cleanup) at the N-th rename, see consumer docs."""
        if self._hooks.get(hook) == count:
            os._exit(86)


def crash_hooks_from_env() -> dict[str, int]:
    """The crash hooks set in the environment (used only by the crash tests)."""
    hooks = {}
    for name in ("SMARTHOME_TEST_CRASH_BEFORE_RENAME", "SMARTHOME_TEST_CRASH_AFTER_RENAME"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            hooks[name] = int(value)
    return hooks
