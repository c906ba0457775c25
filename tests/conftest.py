"""Shared test setup. Each stage keeps its fixtures in its own plugin module below."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = [
    "tests.fixtures_kafka",
    "tests.fixtures_models",
    "tests.fixtures_api",
]

#: one device with every feature field, as a user would post it
DEVICE = {
    "DeviceType": "Camera",
    "UsageHoursPerDay": 3.5,
    "EnergyConsumption": 7.25,
    "UserPreferences": 0,
    "MalfunctionIncidents": 3,
    "DeviceAgeMonths": 40,
}

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Every Spark JVM a test starts lives for one short job, and spends much of it compiling with
# C2: the client compiler alone trains a quick set about 30% sooner here (24 s against 33 s
# for one batch). Tests only: a user's long-running watcher keeps the JVM's defaults.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
# The same for the brokers tests start (a third less CPU to start one here: 3.6 s against 5.5 s)
os.environ.setdefault("KAFKA_OPTS", "-XX:TieredStopAtLevel=1")


@pytest.fixture(autouse=True)
def no_kafka_config_in_force() -> object:
    """Tests start without a developer's KAFKA_CONFIG, and a test that puts one in force
    (a script's main() run in-process with --kafka-config) does not leave it to the next."""
    before = os.environ.pop("KAFKA_CONFIG", None)
    yield
    os.environ.pop("KAFKA_CONFIG", None)
    if before is not None:
        os.environ["KAFKA_CONFIG"] = before


def require(condition: bool, what: str) -> None:
    """Skip locally when a real part is missing, but fail under CI=true: never skip silently."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="session")
def java_available() -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH)")


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    return ROOT / "dataset" / "smart_home_device_usage_data.csv"


#: fixtures that start a real part, and the marker a test using them gets
_REAL_PARTS = {
    "kafka_broker": "kafka",
    "make_topic": "kafka",
    "restartable_kafka": "kafka",
    "spark": "spark",
    "trained_model_dir": "spark",
    "api_server": "spark",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test by the real parts its fixtures start, so `make test-fast` skips them,
    and put the longest files first (``LONGEST_FIRST``)."""
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & _REAL_PARTS.keys():
            item.add_marker(_REAL_PARTS[fixture])
    items.sort(key=lambda item: _LONGEST_RANK.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))


#: The test files that take longest (minutes each, measured with --durations), in that order.
#: `make test` hands whole files to its workers (--dist loadfile) in collection order: started
#: first, they run beside the many short files instead of leaving one worker alone at the end.
LONGEST_FIRST = (
    "tests/training/test_spark_cluster.py",
    "tests/test_readme.py",
    "tests/training/test_spark_cluster_faults.py",
    "tests/devtools/test_partitions.py",
    "tests/devtools/test_demo.py",
    "tests/devtools/test_chaos_cluster.py",
    "tests/promotion/test_gate.py",
    "tests/tracking/test_mlflow_gate.py",
    "tests/devtools/test_chaos.py",
    "tests/training/test_training.py",
    "tests/scoring/test_scoring_parity.py",
    "tests/observe/test_metrics_training.py",
)
_LONGEST_RANK = {path: rank for rank, path in enumerate(LONGEST_FIRST)}
