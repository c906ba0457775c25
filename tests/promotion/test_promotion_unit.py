"""The champion pointer, rollback, the holder following it, promote_model.py, drift statistics.

No Spark: sets are folders with a manifest (``tests.helpers.fake_sets``), drift is computed on
the dataset's rows.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.promotion import CHAMPION, ChampionPointer, read_champion
from smarthome.drift.stats import DEFAULT_THRESHOLDS, column_drift, psi
from smarthome.errors import UserError
from smarthome.promotion import events
from smarthome.promotion.pointer import move_champion, roll_back
from smarthome.scoring.batch_rows import read_rows
from smarthome.scoring.holder import ModelHolder
from tests.helpers.fake_sets import FakeSet
from tests.helpers.promotion import promote_model
from tests.helpers.samples import sample_manifest, write_set


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    for number in (1, 2, 3):
        write_set(folder, sample_manifest(number))
    return folder


def _names(model_dir: Path) -> list[str]:
    return [p.name for p in registry.list_sets(model_dir)]


def test_move_and_rollback_walk_the_history_and_announce_each_move(model_dir: Path) -> None:
    one, two, three = _names(model_dir)
    seen = []
    listener = events.on_champion_change(seen.append)
    try:
        move_champion(model_dir, one, "first")
        move_champion(model_dir, three, "promote")
        assert read_champion(model_dir).set == three
        change = roll_back(model_dir)
        assert (change.before, change.after, change.by) == (three, one, "rollback")
        assert read_champion(model_dir).set == one
        with pytest.raises(UserError, match="nothing to roll back to"):
            roll_back(model_dir)
    finally:
        events.remove(listener)
    assert [(c.before, c.after) for c in seen] == [(None, one), (one, three), (three, one)]
    assert two not in [e.set for e in read_champion(model_dir).history]


def test_a_failed_pointer_write_leaves_the_old_pointer(model_dir: Path, monkeypatch) -> None:
    one, two, _ = _names(model_dir)
    move_champion(model_dir, one, "first")

    def crash(*_args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        move_champion(model_dir, two, "promote")
    monkeypatch.undo()
    assert read_champion(model_dir).set == one
    assert [p.name for p in model_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_unknown_set_is_one_clear_error(model_dir: Path) -> None:
    with pytest.raises(UserError, match="not a published model set"):
        move_champion(model_dir, "20990101T000000Z_set0042", "promote")


def test_holder_serves_the_champion_and_follows_a_rollback(model_dir: Path) -> None:
    one, two, three = _names(model_dir)
    holder = ModelHolder(model_dir, loader=FakeSet)
    holder.check()
    assert holder.current_name == three  # no pointer: the newest, as before the gate
    move_champion(model_dir, one, "first")
    assert holder.check() and holder.current_name == one  # an older set: served all the same
    move_champion(model_dir, two, "gate")
    assert holder.check() and holder.current_name == two
    roll_back(model_dir)
    assert holder.check() and holder.current_name == one
    (model_dir / CHAMPION).write_text("{broken")
    assert not holder.check() and holder.current_name == one  # keeps serving


def test_broken_pointer_with_nothing_loaded_serves_the_newest(model_dir: Path) -> None:
    (model_dir / CHAMPION).write_text(json.dumps({"format": 1, "set": "nope"}))
    holder = ModelHolder(model_dir, loader=FakeSet)
    holder.check()
    assert holder.current_name == _names(model_dir)[-1]


def test_promote_model_cli(model_dir: Path) -> None:
    one, two, _ = _names(model_dir)
    done = promote_model(model_dir, "promote", "2")  # a set number names the newest folder of it
    assert done.returncode == 0, done.stderr
    assert read_champion(model_dir).set == two
    assert ChampionPointer.read(model_dir / CHAMPION).by == "promote"
    bad = promote_model(model_dir, "promote", "9")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("promote_model.py: error: 9: no such model set")
    lonely = promote_model(model_dir, "rollback")
    assert lonely.returncode == 2 and "nothing to roll back to" in lonely.stderr
    status = promote_model(model_dir, "status")
    assert status.returncode == 0 and f"champion: {two} (by promote" in status.stdout
    assert f"{one}: no decision" in status.stdout


def test_same_distribution_does_not_drift_and_a_shift_does(dataset_path: Path) -> None:
    rows = read_rows([dataset_path])
    reference, batch = rows.iloc[:3000], rows.iloc[3000:4000]
    assert not any(c.drifted for c in column_drift(reference, batch, DEFAULT_THRESHOLDS))
    shifted = batch.assign(UsageHoursPerDay=(batch["UsageHoursPerDay"] + 6).clip(upper=24))
    drifted = {c.column: c for c in column_drift(reference, shifted, DEFAULT_THRESHOLDS)}
    assert [name for name, c in drifted.items() if c.drifted] == ["UsageHoursPerDay"]
    assert drifted["UsageHoursPerDay"].p_value < 1e-10 and drifted["UsageHoursPerDay"].psi > 1
    devices = batch.assign(DeviceType="Camera")
    by_column = {c.column: c for c in column_drift(reference, devices, DEFAULT_THRESHOLDS)}
    assert by_column["DeviceType"].drifted and by_column["DeviceType"].test == "chi2"


def test_psi_formula() -> None:
    ref, new = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(ref, new) == pytest.approx(expected)
    assert psi(ref, ref) == 0.0
    assert np.isfinite(psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))  # empty bins floored


def test_rows_training_would_skip_are_skipped(tmp_path: Path, dataset_path: Path) -> None:
    frame = pd.read_csv(dataset_path).head(5)
    frame.loc[1, "UsageHoursPerDay"] = 30  # out of range
    frame.loc[2, "DeviceType"] = "Toaster"
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    rows = read_rows([path])
    assert list(rows["UserID"]) == list(frame["UserID"].drop([1, 2]))


def test_retrain_moves_the_champion_to_the_retrained_folder_of_its_number(
    model_dir: Path,
) -> None:
    from datetime import datetime, timezone

    from smarthome.contracts.promotion import read_promotion
    from smarthome.promotion.gate import after_retrain

    one, two, three = _names(model_dir)
    move_champion(model_dir, two, "gate")
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    retrained = [
        write_set(model_dir, sample_manifest(n, created=later, name=registry.set_name(n, later)))
        for n in (1, 2, 3)
    ]
    for old in (one, two, three):  # --retrain-all removes the replaced folders
        shutil.rmtree(model_dir / old)
    after_retrain(retrained, model_dir, log=lambda _: None)
    assert read_champion(model_dir).set == retrained[1].name
    assert [read_promotion(p).promoted for p in retrained] == [False, True, False]


def test_api_says_which_set_is_champion_and_lists_drift(model_dir: Path, dataset_path) -> None:
    from smarthome.api import create_app
    from smarthome.contracts.drift import BatchDrift, Thresholds
    from smarthome.contracts.promotion import PROMOTION, Promotion
    from smarthome.drift.reports import save

    one, _, three = _names(model_dir)
    move_champion(model_dir, one, "first")
    Promotion(
        set=three, decided_at="2026-01-01T00:00:00+00:00", mode="gate", promoted=False,
        champion_before=one, tolerance=0.02, held_out_rows=10, checks=[],
        reasons=["efficiency accuracy: 0.70 against the champion's 0.80"],
    ).write(model_dir / three / PROMOTION)  # fmt: skip
    report = BatchDrift(
        batch="smart_home_batch_x.csv", reference_set=one, reference_rows=5, rows=5,
        checked_at="2026-01-01T00:00:00+00:00", thresholds=Thresholds(alpha=0.01, psi=0.2, bins=10),
        columns=[], alarm=False, drifted_columns=[],
    )  # fmt: skip
    save(model_dir, report)
    app = create_app(model_dir, reload_seconds=0, loader=FakeSet, metrics=False)
    client = app.test_client()
    status = client.get("/").get_json()
    assert status["model_set"] == one and status["champion"]["set"] == one
    assert status["loaded_model_set"] == 1
    models = client.get("/models").get_json()
    assert models["champion"] == one
    entries = {e["name"]: e for e in models["sets"]}
    assert entries[one]["champion"] and not entries[three]["champion"]
    assert entries[three]["promotion"]["reasons"][0].startswith("efficiency accuracy")
    drift = client.get("/drift").get_json()
    assert drift["champion"] == one and [b["batch"] for b in drift["batches"]] == [report.batch]
