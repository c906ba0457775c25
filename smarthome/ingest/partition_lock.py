"""Per-partition file locks that fence a paused consumer out of the batch folder (DESIGN §5).

Kafka's group protocol moves a partition to another member when its owner stops
heartbeating, but the old owner does not know it yet: paused past its session timeout (a
closed laptop lid, a VM stall, SIGSTOP), it wakes up with a full buffer and would publish a
batch file the new owner has already written. Kafka cannot fence that write (it is to the
filesystem, not to Kafka), so the batch folder fences it itself:

* a consumer takes ``<batch_dir>/.locks/<topic>+<partition>.lock`` with ``flock`` when the
  partition is assigned, and lets go when it is revoked or lost;
* it reads the resume point from the files only *after* it holds the lock, and publishes a
  file only while it still holds it;
* a new owner that cannot get the lock yet keeps the partition paused and tries again after
  every poll.

So at most one process writes a partition's files at any time, and each writer starts after
everything its predecessor published. The kernel drops a dead process's locks, so a
SIGKILLed member never blocks the next owner. ``flock`` locks are local: every consumer of a
group must see the batch folder on one machine's filesystem (not NFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_DIR = ".locks"


def lock_path(batch_dir: Path | str, topic: str, partition: int) -> Path:
    return Path(batch_dir) / LOCK_DIR / f"{topic}+{partition}.lock"


class PartitionLocks:
    """The partition locks this process holds, by (topic, partition)."""

    def __init__(self, batch_dir: Path | str) -> None:
        self.batch_dir = Path(batch_dir)
        self._held: dict[tuple[str, int], int] = {}

    def acquire(self, topic: str, partition: int) -> bool:
        """Take the lock without waiting; False while another process holds it."""
        key = (topic, partition)
        if key in self._held:
            return True
        path = lock_path(self.batch_dir, topic, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)  # who holds it, for the waiting member's message
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._held[key] = fd
        return True

    def holds(self, topic: str, partition: int) -> bool:
        """Whether this process still holds the lock (asked of the kernel, ~1 µs)."""
        fd = self._held.get((topic, partition))
        if fd is None:
            return False
        try:  # re-locking a lock we hold succeeds at once; it fails only if it is not ours
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def release(self, topic: str, partition: int) -> None:
        fd = self._held.pop((topic, partition), None)
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock

    def release_all(self) -> None:
        for topic, partition in list(self._held):
            self.release(topic, partition)

    def holder(self, topic: str, partition: int) -> str:
        """The pid written by the lock's holder, or "?" (for messages only)."""
        with contextlib.suppress(OSError, ValueError):
            return str(int(lock_path(self.batch_dir, topic, partition).read_text().strip()))
        return "?"
