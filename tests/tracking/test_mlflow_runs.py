"""MLflow tracking of the model sets, read back through MLflow's own client.

A real MLflow store (sqlite in a temporary folder) and real quick sets trained by local Spark;
the unit tests at the top need neither: MLflow missing, or a store that does not answer, is
one warning line and no tracker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.batches import write_batches
from smarthome.devtools.ports import free_port
from smarthome.tracking import mlflow_runs
from smarthome.tracking.mlflow_runs import CHAMPION_ALIAS, REGISTERED_MODELS, SetTracker
from tests.helpers.training import quick_config


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


# --- MLflow absent or unreachable: one warning line, no tracker ------------------------------


def test_no_uri_is_no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mlflow_runs.URI_ENV, raising=False)
    warnings: list[str] = []
    assert mlflow_runs.connect(None, warnings.append) is None
    assert warnings == []


def test_mlflow_not_installed_is_one_warning(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    warnings: list[str] = []
    assert mlflow_runs.connect(sqlite_uri(tmp_path), warnings.append) is None
    assert len(warnings) == 1
    assert "not installed" in warnings[0] and "requirements.txt" in warnings[0]


def test_unreachable_server_is_one_warning(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    warnings: list[str] = []
    assert mlflow_runs.connect(f"http://127.0.0.1:{port}", warnings.append) is None
    assert len(warnings) == 1
    assert f"cannot use http://127.0.0.1:{port}" in warnings[0]


def test_broken_sqlite_store_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_text("not a database\n" * 100)
    uri = sqlite_uri(tmp_path)
    warnings: list[str] = []
    assert mlflow_runs.connect(uri, warnings.append) is None
    assert len(warnings) == 1 and "not a database" in warnings[0]


def test_the_environment_variable_gives_the_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mlflow_runs.URI_ENV, " sqlite:///x.db ")
    assert mlflow_runs.tracking_uri(None) == "sqlite:///x.db"
    assert mlflow_runs.tracking_uri("http://h:5000") == "http://h:5000"


def test_a_password_never_reaches_a_warning() -> None:
    uri = "postgresql://ml:s3cret@db.example:5432/mlflow"
    assert mlflow_runs.redact(uri) == "postgresql://ml:***@db.example:5432/mlflow"
    error = RuntimeError(f"could not connect to {uri}\ndetails")
    assert mlflow_runs.describe(error, uri) == (
        "could not connect to postgresql://ml:***@db.example:5432/mlflow"
    )


def test_step_names_become_metric_keys() -> None:
    assert mlflow_runs.metric_key("fit, evaluate, profile, save, export") == (
        "fit_evaluate_profile_save_export"
    )
    assert mlflow_runs.metric_key("read") == "read"


# --- a real store, real sets -----------------------------------------------------------------


@pytest.fixture(scope="module")
def two_sets(spark, dataset_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """Sets 1 and 2 (one and two batch files), quick models: [(folder, step seconds)]."""
    from smarthome.training.build import build_set
    from smarthome.training.planner import PlannedSet

    root = tmp_path_factory.mktemp("tracked")
    files = write_batches(dataset_path, root / "batches")
    model_dir = root / "models"
    built = [
        build_set(spark, PlannedSet(n, files[:n]), model_dir, quick_config(), 50, lambda _: None)
        for n in (1, 2)
    ]
    return [(b.path, dict(b.seconds)) for b in built]


@pytest.fixture(scope="module")
def store(two_sets, tmp_path_factory: pytest.TempPathFactory):
    """A sqlite store with both sets logged as training logs them; (tracker, MlflowClient)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    warnings: list[str] = []
    tracker = mlflow_runs.connect(sqlite_uri(folder), warnings.append)
    assert tracker is not None, warnings
    for path, seconds in two_sets:
        assert tracker.log_set(path, seconds) is not None, warnings
    assert warnings == []
    return tracker, MlflowClient(sqlite_uri(folder)), folder


def manifest(folder: Path) -> dict:
    return json.loads((folder / registry.MANIFEST).read_text())


def test_every_set_is_a_run_with_its_settings_metrics_and_seconds(two_sets, store) -> None:
    _, client, _ = store
    experiment = client.get_experiment_by_name(mlflow_runs.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.run_name for r in runs] == [path.name for path, _ in two_sets]
    for run, (path, seconds) in zip(runs, two_sets, strict=True):
        m = manifest(path)
        assert run.info.status == "FINISHED"
        assert run.data.tags[mlflow_runs.SET_TAG] == path.name
        params, values = run.data.params, run.data.metrics
        assert params["rows"] == str(m["rows"])
        assert params["config.quick"] == "True" and params["config.seed"] == str(
            m["config"]["seed"]
        )
        assert params["test_rows"] == str(m["split"]["test_rows"])
        assert params["batch_files"] == str(len(m["batch_files"]))
        assert params["first_batch"] == m["batch_files"][0]
        assert params["last_batch"] == m["batch_files"][-1]
        assert params["efficiency.numTrees"] == str(m["models"]["efficiency"]["params"]["numTrees"])
        eff, mal = m["models"]["efficiency"], m["models"]["malfunction"]
        assert values["efficiency.accuracy"] == pytest.approx(eff["metrics"]["accuracy"])
        assert values["efficiency.f1"] == pytest.approx(eff["metrics"]["f1"])
        assert values["efficiency.baseline.accuracy"] == pytest.approx(eff["baseline"]["accuracy"])
        assert values["malfunction.rmse"] == pytest.approx(mal["metrics"]["rmse"])
        assert values["malfunction.baseline.rmse"] == pytest.approx(mal["baseline"]["rmse"])
        assert values["clustering.silhouette"] == pytest.approx(
            m["models"]["clustering"]["metrics"]["silhouette"]
        )
        for step, spent in seconds.items():
            assert values[f"seconds.{mlflow_runs.metric_key(step)}"] == pytest.approx(spent)
        assert {"seconds.read", "seconds.total"} <= values.keys()


def test_every_run_holds_the_sets_files_and_its_three_saved_models(
    two_sets, store, tmp_path: Path
) -> None:
    import mlflow.artifacts

    tracker, client, folder = store
    path, _ = two_sets[1]
    run_id = tracker.run_of(path.name).info.run_id
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"manifest.json", "scoring.json", "clusters.json", *REGISTERED_MODELS} <= names
    # the artefacts are kept beside the database, not in the working folder of the process
    assert (folder / "mlartifacts").is_dir()
    copy = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, tracking_uri=tracker.uri, dst_path=str(tmp_path)
        )
    )
    assert json.loads((copy / "manifest.json").read_text()) == manifest(path)
    for model in REGISTERED_MODELS:
        assert (copy / model / "metadata").is_dir() and (copy / model / "stages").is_dir()


def test_each_set_adds_a_version_of_the_three_registered_models(two_sets, store) -> None:
    tracker, client, _ = store
    for model, name in REGISTERED_MODELS.items():
        versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: v.version)
        assert [v.tags[mlflow_runs.SET_TAG] for v in versions] == [p.name for p, _ in two_sets]
        for version, (path, _) in zip(versions, two_sets, strict=True):
            assert version.run_id == tracker.run_of(path.name).info.run_id
            assert version.source.endswith(f"/{model}")


def test_a_set_is_logged_once(two_sets, store) -> None:
    tracker, client, _ = store
    path, seconds = two_sets[0]
    first = tracker.run_of(path.name).info.run_id
    assert tracker.log_set(path, seconds) == first
    experiment = client.get_experiment_by_name(mlflow_runs.EXPERIMENT)
    assert len(client.search_runs([experiment.experiment_id])) == 2
    assert len(client.search_model_versions("name = 'smarthome-efficiency'")) == 2


def test_the_champion_alias_names_the_served_sets_versions_and_loads(
    spark, two_sets, store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pyspark.ml import PipelineModel

    tracker, client, _ = store
    for path, _ in [two_sets[1], two_sets[0], two_sets[1]]:
        assert tracker.set_champion(path)
        run_id = tracker.run_of(path.name).info.run_id
        for name in REGISTERED_MODELS.values():
            version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
            assert version.run_id == run_id, (name, path.name)
            assert version.tags[mlflow_runs.SET_TAG] == path.name
    # what the registry serves as champion is a Spark model that loads and scores
    import mlflow.artifacts

    monkeypatch.setenv(mlflow_runs.URI_ENV, tracker.uri)  # as a user points MLflow at the store
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/smarthome-efficiency@{CHAMPION_ALIAS}", dst_path=str(tmp_path)
    )
    model = PipelineModel.load(folder)
    rows = spark.read.csv(str(sorted(two_sets[1][0].parent.parent.glob("batches/*"))[0]),
                          header=True, inferSchema=True).limit(5)  # fmt: skip
    assert model.transform(rows).count() == 5


def test_a_set_trained_without_tracking_is_logged_when_it_becomes_champion(
    two_sets, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    tracker = mlflow_runs.connect(sqlite_uri(tmp_path), pytest.fail)
    path, _ = two_sets[0]
    assert tracker.set_champion(path)
    run = tracker.run_of(path.name)
    assert run.data.tags["smarthome.logged_by"] == "set folder"
    client = MlflowClient(sqlite_uri(tmp_path))
    version = client.get_model_version_by_alias("smarthome-segments", CHAMPION_ALIAS)
    assert version.run_id == run.info.run_id


def test_a_store_that_stops_answering_is_one_warning_per_set(
    two_sets, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    for name, value in mlflow_runs.HTTP_DEFAULTS.items():  # as connect() sets them
        monkeypatch.setenv(name, value)
    warnings: list[str] = []
    port = free_port()
    gone = SetTracker(MlflowClient(f"http://127.0.0.1:{port}"), "0", "http://x", warnings.append)
    path, seconds = two_sets[0]
    assert gone.log_set(path, seconds) is None
    assert gone.set_champion(path) is False
    assert len(warnings) == 2 and path.name in warnings[0]
