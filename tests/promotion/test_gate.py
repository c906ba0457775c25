"""The promotion gate and drift checks with real Spark training, a real API and real batches.

- a set trained on a batch whose efficiency labels are flipped is published but not promoted;
  the API keeps serving the champion and says why; ``promote_model.py promote`` and
  ``rollback`` move the served set while clients hammer the API, without one failed request;
- a synthetic stream whose usage hours shift halfway: the drift alarm fires on the shifted
  batches and on none before, and the gate holds the champion;
- the held-out split recomputed with numpy is Spark's, row for row.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from smarthome.contracts import model_sets as registry
from smarthome.contracts.drift import SET_DRIFT, SetDrift, read_batch_reports
from smarthome.contracts.promotion import read_champion, read_promotion
from smarthome.devtools.batches import write_batches
from smarthome.devtools.servers import running_api
from tests.conftest import DEVICE
from tests.helpers.promotion import add_batches, flip_efficiency, promote_model, shifted_stream
from tests.helpers.training import quick_config

pytestmark = pytest.mark.slow


def _train(spark, batch_dir: Path, model_dir: Path, **gate_settings) -> list[Path]:
    from smarthome.promotion.gate import GateSettings
    from smarthome.training.runner import run_once

    return run_once(
        spark, batch_dir, model_dir, quick_config(), latest_only=True, log=lambda _: None,
        gate=GateSettings(**gate_settings),
    )  # fmt: skip


def _check(name: str, promotion) -> object:
    return next(c for c in promotion.checks if c.name == name)


def _served(url: str) -> str:
    return requests.get(url + "/", timeout=10, headers={"Connection": "close"}).json()["model_set"]


def _wait_served(url: str, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:  # every worker: a fresh connection may reach any of them
        if all(_served(url) == name for _ in range(8)):
            return
        assert time.monotonic() < deadline, f"the API never served {name}"
        time.sleep(0.2)


class Load:
    """Clients posting predictions and reading ``GET /`` until stopped; failures counted."""

    def __init__(self, url: str, clients: int = 4):
        self.url, self.stop = url, threading.Event()
        self.ok = self.failed = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(clients)
        self.jobs = [self.pool.submit(self._client, i) for i in range(clients)]

    def _client(self, i: int) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            try:
                if i % 2:
                    resp = session.post(f"{self.url}/predict_efficiency", json=DEVICE, timeout=10)
                    good = resp.status_code == 200 and "model_set" in resp.json()
                else:
                    resp = session.get(f"{self.url}/", timeout=10)
                    good = resp.status_code == 200 and resp.json()["status"] == "ok"
                why = f"{resp.status_code} {resp.text[:200]}"
            except requests.RequestException as exc:
                good, why = False, repr(exc)
            with self.lock:
                self.ok += good
                self.failed += not good
                if not good:
                    self.errors.append(why)

    def finish(self) -> None:
        self.stop.set()
        for job in self.jobs:
            job.result()
        self.pool.shutdown()


def test_corrupted_batch_is_published_not_promoted_and_promote_rollback_under_load(
    spark, dataset_path: Path, tmp_path: Path
) -> None:
    files = write_batches(dataset_path, tmp_path / "all", 6)
    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    add_batches(files[:4], batch_dir)
    [champion] = _train(spark, batch_dir, model_dir)
    assert read_champion(model_dir).set == champion.name
    assert read_promotion(champion).mode == "first"

    add_batches(files[4:5], batch_dir)
    flip_efficiency(batch_dir / files[4].name)
    [candidate] = _train(spark, batch_dir, model_dir)

    assert registry.newest_set(model_dir) == candidate  # published ...
    assert read_champion(model_dir).set == champion.name  # ... but not promoted
    decision = read_promotion(candidate)
    assert not decision.promoted and decision.champion_before == champion.name
    accuracy = _check("efficiency accuracy", decision)
    assert accuracy.candidate < accuracy.champion  # both sides scored, the candidate worse
    assert decision.held_out_rows == _check("held-out rows", decision).limit > 0
    drift = _check("drift", decision)
    assert not drift.passed and "SmartHomeEfficiency" in drift.rule
    set_drift = SetDrift.read(candidate / SET_DRIFT)
    assert set_drift.drifted_columns == ["SmartHomeEfficiency"]

    with running_api(model_dir, tmp_path / "api.log") as url:
        status = requests.get(url + "/", timeout=10).json()
        assert status["model_set"] == champion.name
        assert status["loaded_model_set"] == registry.set_number(champion)  # original field
        assert status["champion"]["set"] == champion.name
        models = requests.get(url + "/models", timeout=10).json()
        assert models["champion"] == champion.name
        by_name = {entry["name"]: entry for entry in models["sets"]}
        assert by_name[champion.name]["champion"] and by_name[champion.name]["loaded"]
        held = by_name[candidate.name]
        assert not held["champion"] and held["promotion"]["promoted"] is False
        assert any("drift" in reason for reason in held["promotion"]["reasons"])

        load = Load(url)
        try:
            promoted = promote_model(model_dir, "promote", candidate.name)
            assert promoted.returncode == 0, promoted.stderr
            _wait_served(url, candidate.name)
            rolled = promote_model(model_dir, "rollback")
            assert rolled.returncode == 0, rolled.stderr
            _wait_served(url, champion.name)
        finally:
            load.finish()
        assert load.failed == 0, load.errors[:5]
        assert load.ok > 0
    status = promote_model(model_dir, "status")
    assert status.returncode == 0
    assert f"champion: {champion.name} (by rollback" in status.stdout
    assert f"{candidate.name}: held" in status.stdout


def test_usage_shift_raises_the_drift_alarm_on_shifted_batches_only_and_the_gate_holds(
    spark, dataset_path: Path, tmp_path: Path
) -> None:
    files = shifted_stream(dataset_path, tmp_path, records=3000, parts=6, shift_hours=6.0)
    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    add_batches(files[:2], batch_dir)
    [first] = _train(spark, batch_dir, model_dir)
    add_batches(files[2:3], batch_dir)  # the last batch before the shift
    _train(spark, batch_dir, model_dir)
    champion = read_champion(model_dir).set  # the gate decided on set 3 either way
    assert not read_batch_reports(model_dir)[-1].alarm

    add_batches(files[3:], batch_dir)  # the shifted half
    [candidate] = _train(spark, batch_dir, model_dir)

    reports = {r.batch: r for r in read_batch_reports(model_dir)}
    assert sorted(reports) == [f.name for f in files[2:]]  # every batch after the first set
    assert not reports[files[2].name].alarm
    for shifted in files[3:]:
        report = reports[shifted.name]
        assert report.alarm and report.drifted_columns == ["UsageHoursPerDay"], report
        usage = next(c for c in report.columns if c.column == "UsageHoursPerDay")
        assert usage.test == "ks" and usage.batch_mean > usage.reference_mean + 3
    decision = read_promotion(candidate)
    assert not decision.promoted and not _check("drift", decision).passed
    assert read_champion(model_dir).set == champion
    assert first.name in [e.set for e in read_champion(model_dir).history]


def test_no_gate_moves_the_champion_to_every_new_set(
    spark, dataset_path: Path, tmp_path: Path
) -> None:
    files = write_batches(dataset_path, tmp_path / "all", 6)
    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    add_batches(files[:4], batch_dir)
    _train(spark, batch_dir, model_dir, enforce=False)
    add_batches(files[4:5], batch_dir)
    flip_efficiency(batch_dir / files[4].name)
    [candidate] = _train(spark, batch_dir, model_dir, enforce=False)
    decision = read_promotion(candidate)
    assert decision.promoted and decision.mode == "no-gate"
    assert "the gate would have held it" in decision.reasons[0]
    assert read_champion(model_dir).set == candidate.name


def test_held_out_split_without_spark_is_sparks(spark, dataset_path: Path) -> None:
    from smarthome.scoring.batch_rows import held_out_mask, read_rows
    from smarthome.training.split import held_out

    rows = read_rows([dataset_path])
    frame = spark.createDataFrame(rows[["UserID"]].assign(i=range(len(rows))))
    for seed, percent in [(42, 20), (7, 35), (2**40, 20)]:
        flags = (
            frame.select("i", held_out(seed, percent).alias("h")).toPandas().sort_values("i")["h"]
        )
        mine = held_out_mask(rows["UserID"].to_numpy(), seed, percent)
        assert (mine == flags.to_numpy()).all(), (seed, percent)
