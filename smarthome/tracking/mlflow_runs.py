"""Model sets as MLflow runs, their three models as versions of three registered models.

With a tracking URI (``spark_training.py --mlflow-uri``, or ``MLFLOW_TRACKING_URI``), every
published set becomes one run of the experiment ``smarthome``, named after the set's folder:

- parameters: the training settings, the models' settings, rows, the split and the batch range;
- metrics: each model's held-out metrics and its baseline's, rows, and the seconds of each
  training step;
- artefacts: ``manifest.json``, ``scoring.json``, ``clusters.json`` (and the gate's files
  when the set has them), and the three saved Spark models, each as its folder;
- each saved model folder registered as a new version of ``smarthome-efficiency``,
  ``smarthome-malfunction`` or ``smarthome-segments``; the alias ``champion`` names the
  versions of the set being served.

The models are registered from the folders Spark's writer saved, not through an MLflow model
flavour: loading them back is ``PipelineModel.load`` on the downloaded folder, as for any set.

Tracking never stops training: with MLflow not installed, or a store that does not answer,
:func:`connect` prints one warning line and returns None; a set that fails to log is one
warning line too, and the next set is tried again.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from smarthome.contracts import model_sets as registry
from smarthome.contracts.manifest import Manifest

URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT = "smarthome"
#: a set's model folder -> the registered model its versions belong to
REGISTERED_MODELS = {
    "efficiency": "smarthome-efficiency",
    "malfunction": "smarthome-malfunction",
    "clustering": "smarthome-segments",
}
CHAMPION_ALIAS = "champion"
#: run and model-version tag naming the set's folder
SET_TAG = "smarthome.set"
#: the files of a set logged as run artefacts, when the set has them: what training writes,
#: then what the promotion gate adds (its drift report and its decision)
SET_FILES = (registry.MANIFEST, registry.SCORING, registry.CLUSTERS, "drift.json", "promotion.json")
#: MLflow's HTTP client retries a store that does not answer 7 times with a growing backoff
#: (minutes); training waits on it, so unless the user set them: two retries, 20 s each
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
#: MLflow would send usage data to its makers; the pipeline runs offline
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true"}
#: MLflow's limits per log_batch call
MAX_PARAMS, MAX_METRICS = 100, 1000
MAX_TAG = 5000

Warn = Callable[[str], None]


def warn_line(message: str) -> None:
    print(f"warning: MLflow tracking: {message}", file=sys.stderr, flush=True)


def tracking_uri(given: str | None = None) -> str | None:
    """The tracking URI: the flag's, else ``MLFLOW_TRACKING_URI``'s; None: tracking off."""
    uri = (given or os.environ.get(URI_ENV, "")).strip()
    return uri or None


def connect(uri: str | None, warn: Warn = warn_line) -> SetTracker | None:
    """A tracker logging into ``uri`` (see :func:`tracking_uri`), or None after one warning
    line when MLflow is not installed or the store does not answer."""
    uri = tracking_uri(uri)
    if uri is None:
        return None
    for name, value in (TELEMETRY_OFF | HTTP_DEFAULTS).items():
        os.environ.setdefault(name, value)
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        warn(
            f"off, MLflow is not installed ({exc}); install it with "
            "`pip install -r requirements.txt` or `pip install -e '.[mlflow]'`"
        )
        return None
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = _experiment(client, uri)
    except Exception as exc:  # whatever the store raises, training goes on
        warn(f"off, cannot use {redact(uri)}: {describe(exc, uri)}")
        return None
    return SetTracker(client, experiment_id, uri, warn)


def _experiment(client: Any, uri: str) -> str:
    """The id of the experiment ``smarthome``, created on first use."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(EXPERIMENT)
    if found is None:
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=artifact_root(uri))
        except MlflowException:  # another process created it meanwhile
            found = client.get_experiment_by_name(EXPERIMENT)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise RuntimeError(
            f"the experiment {EXPERIMENT!r} is deleted in this store; restore it (MLflow UI or "
            f"`mlflow experiments restore --experiment-id {found.experiment_id}`)"
        )
    return found.experiment_id


def artifact_root(uri: str) -> str | None:
    """Where a sqlite store's runs keep their artefacts: ``mlartifacts/`` beside the database
    file (MLflow's default, ``./mlruns``, would follow the working folder of each process)."""
    if not uri.startswith("sqlite:///"):
        return None
    database = uri.removeprefix("sqlite:///")
    if not database or database.startswith(":memory:"):
        return None
    return (Path(database).resolve().parent / "mlartifacts").as_uri()


def redact(uri: str) -> str:
    """``uri`` without a password (``user:***@host``): warnings and logs keep no secret."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return uri.replace(f":{parts.password}@", ":***@", 1)


def describe(exc: BaseException, uri: str) -> str:
    """The first line of an error, its password redacted."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    password = urlsplit(uri).password
    if password:
        text = text.replace(password, "***")
    return text[:300]


class SetTracker:
    """Logs sets into one MLflow store; every public method warns instead of raising."""

    def __init__(self, client: Any, experiment_id: str, uri: str, warn: Warn = warn_line):
        self.client = client
        self.experiment_id = experiment_id
        self.uri = uri
        self.warn = warn
        self._registered: set[str] = set()

    @property
    def display_uri(self) -> str:
        """The store's URI as it may be shown (no password)."""
        return redact(self.uri)

    # --- what training calls ---------------------------------------------------------------

    def log_set(self, set_dir: Path, step_seconds: Mapping[str, float] | None = None) -> str | None:
        """Log a published set as a run with its registered model versions, once (a set already
        logged is left as it is); the run's id, or None after one warning line."""
        set_dir = Path(set_dir)
        try:
            run = self.run_of(set_dir.name)
            if run is not None:
                return run.info.run_id
            return self._log_set(set_dir, step_seconds)
        except Exception as exc:
            self.warn(f"{set_dir.name} not logged: {describe(exc, self.uri)}")
            return None

    def log_files(self, set_dir: Path, tags: Mapping[str, str] | None = None) -> str | None:
        """Add the set's files (those written after its run, like the gate's) and ``tags`` to
        its run, logging the set first when it has no run; the run's id, or None after one
        warning line."""
        set_dir = Path(set_dir)
        try:
            run = self.run_of(set_dir.name)
            if run is None:
                run_id = self._log_set(set_dir, None)
            else:
                run_id = run.info.run_id
                self._log_files(run_id, set_dir)
            if tags:
                for key, value in tags.items():
                    self.client.set_tag(run_id, key, value[:MAX_TAG])
            return run_id
        except Exception as exc:
            self.warn(f"{set_dir.name}'s files not logged: {describe(exc, self.uri)}")
            return None

    def set_champion(self, set_dir: Path) -> bool:
        """Point the alias ``champion`` of the three registered models at the set's versions
        (logging the set first when it has no run); False after one warning line."""
        set_dir = Path(set_dir)
        try:
            run = self.run_of(set_dir.name)
            run_id = run.info.run_id if run is not None else self._log_set(set_dir, None)
            versions = self.versions_of(run_id)
            missing = sorted(set(REGISTERED_MODELS.values()) - versions.keys())
            if missing:
                raise RuntimeError(f"run {run_id} has no version of {', '.join(missing)}")
            for name, version in versions.items():
                self.client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
            return True
        except Exception as exc:
            self.warn(
                f"alias {CHAMPION_ALIAS!r} not moved to {set_dir.name}: {describe(exc, self.uri)}"
            )
            return False

    # --- reading the store back ------------------------------------------------------------

    def run_of(self, set_name: str) -> Any | None:
        """The newest run logged for the set named ``set_name``, or None."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{SET_TAG}` = '{set_name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def versions_of(self, run_id: str) -> dict[str, str]:
        """Registered model name -> the version registered from run ``run_id``."""
        found = self.client.search_model_versions(f"run_id = '{run_id}'")
        return {v.name: v.version for v in found if v.name in REGISTERED_MODELS.values()}

    # --- one run ---------------------------------------------------------------------------

    def _log_set(self, set_dir: Path, step_seconds: Mapping[str, float] | None) -> str:
        manifest = Manifest.read(set_dir / registry.MANIFEST)
        run = self.client.create_run(
            self.experiment_id,
            run_name=set_dir.name,
            tags={SET_TAG: set_dir.name} | run_tags(manifest, step_seconds is not None),
        )
        run_id = run.info.run_id
        try:
            self._log_batches(run_id, params(manifest), metrics(manifest, step_seconds))
            self._log_files(run_id, set_dir)
            for model in REGISTERED_MODELS:
                self.client.log_artifacts(run_id, str(set_dir / model), model)
            for model, name in REGISTERED_MODELS.items():
                self._register(name, run_id, model, set_dir.name)
            self.client.set_terminated(run_id, "FINISHED")
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.set_terminated(run_id, "FAILED")
            raise
        return run_id

    def _log_batches(self, run_id: str, params: dict[str, str], metrics: dict[str, float]):
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in params.items()]
        metric_list = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for start in range(0, max(len(param_list), len(metric_list)), MAX_PARAMS):
            self.client.log_batch(
                run_id,
                params=param_list[start : start + MAX_PARAMS],
                metrics=metric_list[start : start + MAX_PARAMS],
            )

    def _log_files(self, run_id: str, set_dir: Path) -> None:
        for name in SET_FILES:
            if (set_dir / name).is_file():
                self.client.log_artifact(run_id, str(set_dir / name))

    def _register(self, name: str, run_id: str, model: str, set_name: str) -> str:
        from mlflow.exceptions import MlflowException

        if name not in self._registered:
            try:
                self.client.create_registered_model(
                    name, description=f"The {model} model of the smart-home model sets"
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            self._registered.add(name)
        version = self.client.create_model_version(
            name,
            source=f"runs:/{run_id}/{model}",
            run_id=run_id,
            tags={SET_TAG: set_name},
            description=f"{set_name}/{model}: a Spark PipelineModel folder (PipelineModel.load)",
        )
        return version.version


def params(manifest: Manifest) -> dict[str, str]:
    """A set's MLflow parameters: settings, rows, split and batch range (values as text)."""
    out: dict[str, Any] = {f"config.{k}": v for k, v in manifest.config.model_dump().items()}
    out |= {
        "set": manifest.set,
        "rows": manifest.rows,
        "rows_skipped": manifest.rows_skipped,
        "train_rows": manifest.split.train_rows,
        "test_rows": manifest.split.test_rows,
        "split": manifest.split.method,
        "batch_files": len(manifest.batch_files),
        "first_batch": manifest.batch_files[0] if manifest.batch_files else "",
        "last_batch": manifest.batch_files[-1] if manifest.batch_files else "",
    }
    for model, section in manifest.models:
        out[f"{model}.algorithm"] = section.algorithm
        out |= {f"{model}.{k}": v for k, v in section.params.items()}
    out["clustering.k"] = manifest.models.clustering.k
    return {key: str(value) for key, value in out.items()}


def metrics(manifest: Manifest, step_seconds: Mapping[str, float] | None) -> dict[str, float]:
    """A set's MLflow metrics: held-out metrics and baselines of each model, rows, seconds."""
    out: dict[str, float] = {"rows": float(manifest.rows)}
    for model, section in manifest.models:
        out |= _numbers(f"{model}.", section.metrics.model_dump())
        out |= _numbers(f"{model}.baseline.", section.baseline.model_dump())
        out[f"{model}.training_seconds"] = float(section.training_seconds)
    for step, seconds in (step_seconds or {}).items():
        out[f"seconds.{metric_key(step)}"] = float(seconds)
    return out


def run_tags(manifest: Manifest, from_training: bool) -> dict[str, str]:
    batches = manifest.batch_files
    span = f"{batches[0]} .. {batches[-1]}" if batches else "no batch files"
    tags = {
        "smarthome.set_number": str(manifest.set),
        "smarthome.logged_by": "training" if from_training else "set folder",
        "smarthome.efficiency.beats_baseline": str(manifest.models.efficiency.beats_baseline),
        "smarthome.malfunction.beats_baseline": str(manifest.models.malfunction.beats_baseline),
        # the run's description in MLflow's UI
        "mlflow.note.content": (
            f"Set {manifest.set}: {manifest.rows} rows of {len(batches)} batch file(s) "
            f"({span}), trained {manifest.created_at}"
        ),
    }
    tags |= {f"smarthome.version.{k}": v for k, v in manifest.versions.model_dump().items()}
    return tags


def metric_key(text: str) -> str:
    """``fit, evaluate, save`` -> ``fit_evaluate_save`` (MLflow's allowed characters)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "step"


def _numbers(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    return {
        f"{prefix}{k}": float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
