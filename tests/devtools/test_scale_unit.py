"""Fast checks of the scale helpers: the newest-M-sets window and the peak-RSS sampler."""

from __future__ import annotations

import subprocess
import sys

from smarthome.devtools.peakmem import MB, PeakSampler
from smarthome.training.planner import cumulative_reads, newest_sets

#: a child that holds ~200 MB in a grandchild, then exits
HOLD_200MB = """
import subprocess, sys
code = "import time; b = b'x' * (200 * 1024 * 1024); time.sleep(1.5)"
subprocess.run([sys.executable, "-c", code], check=True)
"""


def test_every_cumulative_set_reads_n_n_plus_1_over_2_files_and_a_window_at_most_m_n() -> None:
    assert cumulative_reads(20) == 210  # 1M records in 20 files of 50,000: 10.5M rows read
    assert cumulative_reads(20, max_sets=1) == 20  # --latest-only
    assert cumulative_reads(20, max_sets=3) == 18 + 19 + 20
    assert cumulative_reads(2, max_sets=5) == 3  # a window wider than the files: every set
    for files in range(1, 30):
        for m in range(1, 6):
            assert cumulative_reads(files, m) <= m * files


def test_the_window_keeps_only_the_newest_m_set_numbers_of_a_plan() -> None:
    assert newest_sets(list(range(1, 21)), 20, 3) == [18, 19, 20]
    assert newest_sets([4, 19], 20, 2) == [19]  # set 4 is missing but too old to train
    assert newest_sets([1, 2], 20, 0) == [1, 2]  # 0 = no bound


def test_peak_rss_covers_the_whole_process_tree() -> None:
    with PeakSampler(interval=0.05) as sampler:
        proc = subprocess.Popen([sys.executable, "-c", HOLD_200MB])
        peak = sampler.watch(proc.pid)
        assert proc.wait(timeout=60) == 0
    assert peak.total >= 200 * MB  # held by the grandchild, counted in the tree's total
    name, biggest = peak.largest()
    assert biggest >= 200 * MB and "python" in name
    assert len(peak.per_process) >= 2
