"""MLflow tracking wired into training and the promotion gate, read back through MlflowClient.

- sets trained through the gate are logged as they are published (with their step seconds),
  each decision lands on its run, and the alias ``champion`` names the versions of the set
  ``champion.json`` serves, not the newest; ``promote_model.py promote`` / ``rollback`` move it;
- ``spark_training.py`` with a store that does not answer, or without MLflow, publishes its
  set and says so in one warning line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.promotion import read_champion, read_promotion
from smarthome.devtools.batches import write_batches
from smarthome.devtools.ports import free_port
from smarthome.devtools.workspace import CHECKOUT, venv_env
from smarthome.tracking import mlflow_runs
from smarthome.tracking.mlflow_runs import CHAMPION_ALIAS, REGISTERED_MODELS
from tests.helpers.promotion import add_batches, flip_efficiency
from tests.helpers.training import quick_config

pytestmark = pytest.mark.slow


def _champion_runs(client) -> set[str]:
    """The run ids the alias ``champion`` of each registered model points to."""
    return {
        client.get_model_version_by_alias(name, CHAMPION_ALIAS).run_id
        for name in REGISTERED_MODELS.values()
    }


def _promote_model(model_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "promote_model.py", "--model-dir", str(model_dir), *args],
        cwd=CHECKOUT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_champion_alias_follows_the_gate_promote_and_rollback(
    spark, dataset_path: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from smarthome.promotion import events
    from smarthome.promotion.gate import GateSettings
    from smarthome.tracking.follow import follow_champion, sync_champion
    from smarthome.training.runner import run_once

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = mlflow_runs.connect(uri, pytest.fail)
    client = MlflowClient(uri)
    files = write_batches(dataset_path, tmp_path / "all")
    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    seconds: dict[str, dict[str, float]] = {}

    def published(built) -> None:
        seconds[built.path.name] = dict(built.seconds)
        tracker.log_set(built.path, built.seconds)

    def train() -> Path:
        [folder] = run_once(
            spark, batch_dir, model_dir, quick_config(), latest_only=True, log=lambda _: None,
            gate=GateSettings(), on_published=published,
        )  # fmt: skip
        return folder

    listeners = follow_champion(tracker)
    try:
        add_batches(files[:2], batch_dir)
        first = train()  # the first set: champion by default
        add_batches(files[2:3], batch_dir)
        flip_efficiency(batch_dir / files[2].name)
        held = train()  # trained on flipped labels: published, not promoted
    finally:
        for listener in listeners:
            events.remove(listener)

    assert read_champion(model_dir).set == first.name
    assert read_promotion(held).promoted is False
    runs = {folder.name: tracker.run_of(folder.name) for folder in (first, held)}
    for folder, run in runs.items():
        decision = read_promotion(model_dir / folder)
        assert run.data.tags["smarthome.logged_by"] == "training"
        assert run.data.tags["smarthome.promoted"] == str(decision.promoted)
        assert run.data.tags["smarthome.promotion.reasons"] == "; ".join(decision.reasons)
        assert run.data.metrics["seconds.total"] == pytest.approx(seconds[folder]["total"])
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"promotion.json", "manifest.json", *REGISTERED_MODELS} <= names
    assert "drift.json" in {a.path for a in client.list_artifacts(runs[held.name].info.run_id)}
    # the alias names the served set, not the newest
    assert _champion_runs(client) == {runs[first.name].info.run_id}

    done = _promote_model(model_dir, "--mlflow-uri", uri, "promote", held.name)
    assert done.returncode == 0, done.stderr
    assert _champion_runs(client) == {runs[held.name].info.run_id}
    done = _promote_model(model_dir, "--mlflow-uri", uri, "rollback")
    assert done.returncode == 0, done.stderr
    assert read_champion(model_dir).set == first.name
    assert _champion_runs(client) == {runs[first.name].info.run_id}

    # a move made without tracking: the next training process puts the alias right
    assert _promote_model(model_dir, "promote", held.name).returncode == 0
    assert _champion_runs(client) == {runs[first.name].info.run_id}
    assert sync_champion(tracker, model_dir)
    assert _champion_runs(client) == {runs[held.name].info.run_id}


def _spark_training(batch_dir: Path, model_dir: Path, *args: str, prelude: str = ""):
    """``spark_training.py --quick`` as a user runs it, ``prelude`` run first in its process."""
    argv = ["spark_training.py", "--batch-dir", str(batch_dir), "--model-dir", str(model_dir),
            "--master", "local[1]", "--quick", *args]  # fmt: skip
    code = f"{prelude}\nimport runpy, sys\nsys.argv = {argv!r}\n"
    code += "runpy.run_path('spark_training.py', run_name='__main__')\n"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=CHECKOUT, env=venv_env(), capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.spark
@pytest.mark.parametrize("broken", ["unreachable server", "mlflow not installed"])
def test_training_goes_on_with_one_warning_line(
    java_available, broken: str, dataset_path: Path, tmp_path: Path
) -> None:
    batch_dir, model_dir = tmp_path / "batches", tmp_path / "models"
    write_batches(dataset_path, batch_dir, parts=6)
    for extra in sorted(batch_dir.iterdir())[1:]:
        extra.unlink()  # one batch file: one set
    if broken == "unreachable server":
        done = _spark_training(
            batch_dir, model_dir, "--mlflow-uri", f"http://127.0.0.1:{free_port()}"
        )
    else:  # `import mlflow` fails in that process, as where it is not installed
        done = _spark_training(
            batch_dir, model_dir, "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            prelude="import sys; sys.modules['mlflow'] = None",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "MLflow" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: MLflow tracking: off, ")
    assert "Traceback" not in done.stderr
    assert [registry.set_number(p) for p in registry.list_sets(model_dir)] == [1]
    assert read_champion(model_dir).set == registry.list_sets(model_dir)[0].name
