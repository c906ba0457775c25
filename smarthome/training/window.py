"""Bounding the cost of cumulative training: only the newest M model sets (``--max-sets M``).

Set N is trained on batch files 1..N, so training every set of N files reads
N(N+1)/2 files: 1,000,000 records in 20 files of 50,000 is 210 file reads (10.5 million rows),
and the cost grows with the square of the stream. ``--max-sets M`` keeps the sets N-M+1..N
(the newest M) and never trains the older ones, so a run reads at most M x N files;
``--latest-only`` is the case M = 1. A bigger consumer ``--batch-size`` shrinks N itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def cumulative_reads(files: int, max_sets: int = 0) -> int:
    """Batch files read to train sets max(1, N-M+1)..N of ``files`` = N (0 = every set)."""
    first = 1 if max_sets <= 0 else max(1, files - max_sets + 1)
    return sum(range(first, files + 1))


def newest_sets(planned: Sequence[T], file_count: int, max_sets: int) -> list[T]:
    """The planned sets whose number is among the newest ``max_sets`` of ``file_count`` files.

    ``planned`` holds set numbers or objects with a ``.number``; ``max_sets <= 0`` keeps all.
    """
    if max_sets <= 0:
        return list(planned)
    oldest = file_count - max_sets + 1
    return [item for item in planned if _number(item) >= oldest]


def _number(item: object) -> int:
    return item if isinstance(item, int) else item.number  # type: ignore[attr-defined]


def nothing_new_in_window(file_count: int, max_sets: int, model_dir: Path) -> str:
    first = max(1, file_count - max_sets + 1)
    return (
        f"nothing new to train: sets {first}..{file_count} of {file_count} batch file(s) "
        f"exist in {model_dir} (--max-sets {max_sets})"
    )


def run_newest(
    spark: Any,
    batch_dir: Path,
    model_dir: Path,
    cfg: Any,
    max_sets: int,
    *,
    min_rows: int = 50,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Train the missing sets among the newest ``max_sets`` (oldest first); the published."""
    from smarthome.training.sets import batch_files, build_set, plan

    files = batch_files(batch_dir)
    todo = newest_sets(plan(files, model_dir, False, False, log), len(files), max_sets)
    if not todo:
        log(nothing_new_in_window(len(files), max_sets, model_dir))
        return []
    log(
        f"--max-sets {max_sets}: training set(s) {', '.join(str(p.number) for p in todo)} of "
        f"{len(files)}: {sum(p.number for p in todo)} batch file reads (every set 1..{len(files)}"
        f" would read {cumulative_reads(len(files))})"
    )
    published = [build_set(spark, p, model_dir, cfg, min_rows, log) for p in todo]
    return [folder for folder in published if folder is not None]
