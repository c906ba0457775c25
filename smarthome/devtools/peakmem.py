"""Peak resident memory (RSS) of child processes and their descendants, sampled with psutil.

A stage such as ``spark-submit spark_training.py`` is a tree (a launcher, the driver JVM, the
Python driver), so the figure that matters is the peak of the tree's summed RSS; each process's
own peak is kept too. Sampling (every ``interval`` seconds) can miss a spike shorter than the
interval, so the figures are lower bounds — good enough to see whether memory grows with N.

A process is counted from its second sample on: a JVM spawning a helper (``chmod`` and
friends, via fork) briefly has a child that still maps the whole JVM, and psutil would report
the parent's RSS a second time for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024


@dataclass
class TreePeak:
    """Peaks of one watched process tree: summed RSS, and per process (pid -> (name, bytes))."""

    pid: int
    total: int = 0
    per_process: dict[int, tuple[str, int]] = field(default_factory=dict)
    seen: set[tuple[int, float]] = field(default_factory=set, repr=False)

    @property
    def total_mb(self) -> float:
        return self.total / MB

    def largest(self) -> tuple[str, int]:
        """(name, peak bytes) of the process with the highest own peak."""
        return max(self.per_process.values(), key=lambda item: item[1], default=("-", 0))


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def sample(peak: TreePeak) -> None:
    """Read the tree's RSS once and raise the peaks."""
    total = 0
    seen = set()
    for proc in _tree(peak.pid):
        try:
            key = (proc.pid, proc.create_time())
            rss = proc.memory_info().rss
            name = proc.name()
        except psutil.Error:  # exited between listing and reading
            continue
        seen.add(key)
        if key not in peak.seen and proc.pid != peak.pid:
            continue  # new since the last sample: maybe a fork that has not exec'd yet
        total += rss
        if rss > peak.per_process.get(proc.pid, ("", 0))[1]:
            peak.per_process[proc.pid] = (name, rss)
    peak.seen = seen
    peak.total = max(peak.total, total)


class PeakSampler:
    """Samples the trees of some pids in a background thread until stopped (a context manager).

    >>> with PeakSampler() as sampler:
    ...     proc = subprocess.Popen(...); peak = sampler.watch(proc.pid); proc.wait()
    >>> peak.total_mb
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self._peaks: list[TreePeak] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def watch(self, pid: int) -> TreePeak:
        peak = TreePeak(pid)
        sample(peak)
        with self._lock:
            self._peaks.append(peak)
        return peak

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                peaks = list(self._peaks)
            for peak in peaks:
                sample(peak)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
