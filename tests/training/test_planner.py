"""Fast checks of the planner (no Spark): which sets a run trains, given what is published."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from smarthome.contracts import model_sets as registry
from smarthome.training.planner import Selection, plan

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def batch_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"batch_{i:04d}.csv" for i in range(1, count + 1)]
    for path in files:
        path.write_text("")
    return files


def publish(model_dir: Path, number: int) -> Path:
    """A published set folder (its manifest unreadable: the planner notes it, trains nothing)."""
    folder = model_dir / registry.set_name(number, NOON)
    folder.mkdir(parents=True)
    return folder


def test_a_set_missing_below_the_newest_one_is_noted_not_trained(tmp_path: Path) -> None:
    # a --watch --latest-only that kept up with the stream published set 1, then set 6
    files, model_dir = batch_files(tmp_path / "batches", 6), tmp_path / "models"
    publish(model_dir, 1), publish(model_dir, 6)
    lines: list[str] = []

    todo = plan(files, model_dir, Selection(), lines.append)

    # training set 2 now would publish the newest folder name: the API would serve 2 rows' worth
    assert todo == []
    skipped = [line for line in lines if "skipped" in line]
    assert len(skipped) == 1 and "set(s) 2-5 were skipped" in skipped[0], lines
    assert "--retrain-all" in skipped[0]


def test_new_batches_after_the_newest_set_are_trained_and_retrain_all_trains_every_set(
    tmp_path: Path,
) -> None:
    files, model_dir = batch_files(tmp_path / "batches", 8), tmp_path / "models"
    publish(model_dir, 1), publish(model_dir, 6)

    todo = plan(files, model_dir, Selection(), lambda _line: None)
    assert [(p.number, len(p.files)) for p in todo] == [(7, 7), (8, 8)]
    assert plan(files, model_dir, Selection(latest_only=True), lambda _: None)[0].number == 8

    every = plan(files, model_dir, Selection(retrain_all=True), lambda _line: None)
    assert [p.number for p in every] == list(range(1, 9))
    assert every[-1].files == files


def test_without_a_published_set_every_set_is_trained_oldest_first(tmp_path: Path) -> None:
    files = batch_files(tmp_path / "batches", 3)
    todo = plan(files, tmp_path / "models", Selection(), lambda _line: None)
    assert [p.files for p in todo] == [files[:1], files[:2], files[:3]]
