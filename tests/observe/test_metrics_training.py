"""``spark_training.py --metrics-port``: the collector reads what the model folder says."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.batches import write_batches
from smarthome.devtools.ports import free_port
from smarthome.observe.metrics import TrainingCollector
from tests.conftest import ROOT
from tests.helpers.metrics import samples, scrape
from tests.helpers.samples import sample_manifest, write_set


def scrape_collector(collector: TrainingCollector) -> dict[tuple[str, tuple], float]:
    reg = CollectorRegistry()
    reg.register(collector)
    return samples(generate_latest(reg).decode())


def publish(model_dir: Path, number: int, created: datetime, seconds: float) -> None:
    manifest = sample_manifest(number, created=created, name=registry.set_name(number, created))
    models = manifest.models
    share = {"efficiency": 2, "malfunction": 4, "clustering": 8}
    timed = models.model_copy(
        update={
            name: getattr(models, name).model_copy(update={"training_seconds": seconds / part})
            for name, part in share.items()
        }
    )
    write_set(model_dir, manifest.model_copy(update={"seconds": seconds, "models": timed}))


def test_counts_only_sets_published_since_start_and_sees_a_set_in_progress(
    tmp_path: Path,
) -> None:
    now = datetime.now(timezone.utc)
    publish(tmp_path, 1, now - timedelta(hours=1), 9.0)  # an earlier run's set
    collector = TrainingCollector(tmp_path)
    got = scrape_collector(collector)
    assert got[("smarthome_training_sets_trained_total", ())] == 0
    assert got[("smarthome_training_in_progress", ())] == 0

    (registry.tmp_dir(tmp_path) / "20991231T000000Z_set0002").mkdir(parents=True)
    assert scrape_collector(collector)[("smarthome_training_in_progress", ())] == 1
    publish(tmp_path, 2, now + timedelta(seconds=1), 4.0)
    publish(tmp_path, 3, now + timedelta(seconds=2), 6.0)
    for leftover in registry.tmp_dir(tmp_path).iterdir():
        leftover.rmdir()
    got = scrape_collector(collector)
    assert got[("smarthome_training_sets_trained_total", ())] == 2
    assert got[("smarthome_training_in_progress", ())] == 0
    assert got[("smarthome_training_last_set_number", ())] == 3
    assert got[("smarthome_training_last_set_seconds", ())] == 6.0
    assert got[("smarthome_training_last_model_seconds", (("model", "efficiency"),))] == 3.0
    assert got[("smarthome_training_set_seconds_total", ())] == 10.0


@pytest.mark.spark
@pytest.mark.slow
def test_watch_serves_its_metrics_while_it_trains(
    java_available: None, dataset_path: Path, tmp_path: Path
) -> None:
    batches, models = tmp_path / "batches", tmp_path / "models"
    write_batches(dataset_path, batches, parts=2)
    port = free_port()
    log = tmp_path / "training.log"
    with log.open("wb") as out:
        trainer = subprocess.Popen(
            [sys.executable, "spark_training.py", "--watch", "--quick", "--poll-seconds", "1",
             "--batch-dir", str(batches), "--model-dir", str(models),
             "--metrics-port", str(port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 400
        got: dict = {}
        while time.monotonic() < deadline:
            assert trainer.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                got = scrape(port)
            if got.get(("smarthome_training_sets_trained_total", ())) == 2:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"{got}\n{log.read_text()[-3000:]}")
    finally:
        trainer.send_signal(signal.SIGINT)
        trainer.wait(timeout=120)
    assert got[("smarthome_training_last_set_number", ())] == 2
    assert got[("smarthome_training_in_progress", ())] == 0
    assert got[("smarthome_training_last_set_seconds", ())] > 0
