"""Which model sets a run trains: the one planner for every mode (DESIGN §6).

Set N is trained on batch files 1..N (file-name order), so training every set of N files reads
N(N+1)/2 files: 1,000,000 records in 20 files of 50,000 is 210 file reads (10.5 million rows),
and the cost grows with the square of the stream. ``--max-sets M`` keeps the sets N-M+1..N (the
newest M) and never trains the older ones, so a run reads at most M x N files;
``--latest-only`` is the case M = 1. A bigger consumer ``--batch-size`` shrinks N itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.batch_files import list_batch_files
from smarthome.contracts.manifest import Manifest
from smarthome.errors import UserError

Log = Callable[[str], None]
T = TypeVar("T")
CONSUMER_HINT = "run `python kafka_consumer_batch.py` to write batch files"


class NoBatchesError(UserError):
    """No batch folder or no batch file in it (``--watch`` waits instead of failing)."""


@dataclass(frozen=True)
class Selection:
    """The sets a run asks for: every missing one (default), all again, or only the newest."""

    retrain_all: bool = False
    latest_only: bool = False
    max_sets: int = 0  # only the newest M set numbers; 0 = no bound

    def window(self) -> int:
        return 1 if self.latest_only else self.max_sets


@dataclass(frozen=True)
class PlannedSet:
    number: int
    files: list[Path]


def batch_files(batch_dir: Path) -> list[Path]:
    """The published batch files, or an error naming the folder and how to get some."""
    if not batch_dir.is_dir():
        raise NoBatchesError(f"batch folder {batch_dir} does not exist; {CONSUMER_HINT}")
    files = list_batch_files(batch_dir)
    if not files:
        raise NoBatchesError(f"no batch files in {batch_dir}; {CONSUMER_HINT}")
    return files


def existing_sets(model_dir: Path) -> dict[int, list[tuple[Path, list[str]]]]:
    """Set number -> [(folder, batch file names in its manifest)] of every published set."""
    out: dict[int, list[tuple[Path, list[str]]]] = {}
    for folder in registry.list_sets(model_dir):
        try:
            used = Manifest.read(folder / registry.MANIFEST).batch_files
        except ContractError:
            used = []  # unreadable: not trained on the current files, the plan notes it
        out.setdefault(registry.set_number(folder), []).append((folder, used))
    return out


def plan(files: list[Path], model_dir: Path, selection: Selection, log: Log) -> list[PlannedSet]:
    """The sets to train, oldest first: set N <-> the first N files; missing ones only unless
    ``retrain_all``; within the newest ``selection.window()`` numbers when it is bounded.

    A missing set below the newest published one is not trained (only noted): its folder name
    would be the greatest, so the API would fall back to it from the bigger set."""
    names = [p.name for p in files]
    have = existing_sets(model_dir)
    newest = max(have, default=0)
    todo, behind = [], []
    for number in newest_sets(range(1, len(files) + 1), len(files), selection.window()):
        found = have.get(number, [])
        if selection.retrain_all or (not found and number > newest):
            todo.append(PlannedSet(number, files[:number]))
        elif not found:
            behind.append(number)
        elif not any(used == names[:number] for _, used in found):
            log(
                f"note: set {number} ({found[-1][0].name}) was trained on other batch files "
                "than the current first ones; --retrain-all retrains it"
            )
    if behind:
        log(
            f"note: set(s) {_ranges(behind)} were skipped (by --latest-only, as make demo's "
            f"--watch runs) and are not trained now: published after set {newest}, an older "
            "set would become the newest one the API serves; "
            "--retrain-all trains every set again, in order"
        )
    return todo


def _ranges(numbers: list[int]) -> str:
    """``1, 3-5`` for [1, 3, 4, 5]."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def newest_sets(numbers: Sequence[T], file_count: int, window: int) -> list[T]:
    """The set numbers (or planned sets) among the newest ``window`` of ``file_count``."""
    if window <= 0:
        return list(numbers)
    oldest = file_count - window + 1
    return [item for item in numbers if _number(item) >= oldest]


def _number(item: object) -> int:
    return item if isinstance(item, int) else item.number  # type: ignore[attr-defined]


def cumulative_reads(files: int, max_sets: int = 0) -> int:
    """Batch files read to train sets max(1, N-M+1)..N of ``files`` = N (0 = every set)."""
    first = 1 if max_sets <= 0 else max(1, files - max_sets + 1)
    return sum(range(first, files + 1))


def describe(todo: list[PlannedSet], file_count: int, selection: Selection) -> str | None:
    """What a bounded run costs against training every set; None for an unbounded run."""
    if not selection.max_sets:
        return None
    return (
        f"--max-sets {selection.max_sets}: training set(s) "
        f"{', '.join(str(p.number) for p in todo)} of {file_count}: "
        f"{sum(p.number for p in todo)} batch file reads (every set 1..{file_count} would "
        f"read {cumulative_reads(file_count)})"
    )


def nothing_new(file_count: int, model_dir: Path, selection: Selection) -> str:
    if selection.max_sets:
        first = max(1, file_count - selection.max_sets + 1)
        return (
            f"nothing new to train: sets {first}..{file_count} of {file_count} batch file(s) "
            f"exist in {model_dir} (--max-sets {selection.max_sets})"
        )
    return f"nothing new to train: {file_count} batch file(s), every set exists in {model_dir}"
