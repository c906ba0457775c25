"""Live reload over real HTTP: sets published while clients hammer the API.

A newer set is picked up with zero failed requests; a broken newer set is skipped with its
reason and the old set keeps answering.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from smarthome.contracts import model_sets as registry
from smarthome.devtools.servers import running_api, status_by_worker

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROW = {
    "DeviceType": "Thermostat",
    "UsageHoursPerDay": 7.5,
    "EnergyConsumption": 4.2,
    "UserPreferences": 1,
    "MalfunctionIncidents": 1,
    "DeviceAgeMonths": 20,
}


def publish_copy(source: Path, model_dir: Path, number: int, minutes: int) -> tuple[Path, Path]:
    """Copy a set under a newer name into .tmp; the caller renames it into place (atomic)."""
    name = registry.set_name(number, datetime.now(timezone.utc) + timedelta(minutes=minutes))
    staging = registry.tmp_dir(model_dir) / name
    shutil.copytree(source, staging)
    return staging, model_dir / name


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_new_set_under_load_is_picked_up_and_broken_set_skipped(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    original = registry.newest_set(trained_model_dir)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    shutil.copytree(original, model_dir / original.name)

    with running_api(model_dir, tmp_path / "api.log", "--reload-seconds", "0.2") as url:
        stop = threading.Event()
        seen: list[str] = []
        failures: list[str] = []

        def hammer() -> None:
            with requests.Session() as http:
                while not stop.is_set():
                    try:
                        answer = http.post(url + "/predict_efficiency", json=ROW, timeout=30)
                        if answer.status_code != 200:
                            failures.append(f"{answer.status_code} {answer.text[:200]}")
                        else:
                            seen.append(answer.json()["model_set"])
                    except requests.RequestException as exc:
                        failures.append(repr(exc))

        clients = [threading.Thread(target=hammer) for _ in range(4)]
        for c in clients:
            c.start()
        try:
            wait_for(lambda: len(seen) > 50)
            staging, newer = publish_copy(original, model_dir, 2, minutes=5)
            os.replace(staging, newer)
            wait_for(lambda: seen and seen[-1] == newer.name)
            count_after_swap = len(seen)
            wait_for(lambda: len(seen) > count_after_swap + 50)

            staging, broken = publish_copy(original, model_dir, 3, minutes=10)
            (staging / registry.SCORING).write_text("{ this is not json")
            os.replace(staging, broken)
            wait_for(
                lambda: broken.name in requests.get(url + "/", timeout=10).json()["skipped_sets"]
            )
            count_after_broken = len(seen)
            wait_for(lambda: len(seen) > count_after_broken + 50)
        finally:
            stop.set()
            for c in clients:
                c.join()

        assert failures == []
        assert seen[0] == original.name
        assert set(seen) == {original.name, newer.name}
        assert seen[count_after_broken:] == [newer.name] * (len(seen) - count_after_broken)
        status = requests.get(url + "/", timeout=10).json()
        assert status["model_set"] == newer.name
        assert "scoring.json" in status["skipped_sets"][broken.name]
    log = (tmp_path / "api.log").read_text()
    assert f"skipping model set {broken.name}" in log


def test_every_worker_process_swaps_under_load(trained_model_dir: Path, tmp_path: Path) -> None:
    """Several granian workers: each reloads on its own, all serve the new set within
    --reload-seconds (plus the time to load it), and no request fails during the swap."""
    workers, reload_seconds = 3, 1.0
    original = registry.newest_set(trained_model_dir)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    shutil.copytree(original, model_dir / original.name)
    args = ("--server", "granian", "--workers", str(workers), "--reload-seconds", "1")

    with running_api(model_dir, tmp_path / "api.log", *args) as url:
        before = status_by_worker(url, workers)
        assert set(before.values()) == {original.name}
        stop = threading.Event()
        answers: list[tuple[float, str]] = []
        failures: list[str] = []

        def hammer(keep_alive: bool) -> None:
            headers = {} if keep_alive else {"Connection": "close"}
            with requests.Session() as http:
                while not stop.is_set():
                    try:
                        answer = http.post(
                            url + "/predict_efficiency", json=ROW, headers=headers, timeout=30
                        )
                        if answer.status_code != 200:
                            failures.append(f"{answer.status_code} {answer.text[:200]}")
                        else:
                            answers.append((time.monotonic(), answer.json()["model_set"]))
                    except requests.RequestException as exc:
                        failures.append(repr(exc))

        clients = [threading.Thread(target=hammer, args=(i % 2 == 0,)) for i in range(6)]
        for c in clients:
            c.start()
        try:
            wait_for(lambda: len(answers) > 100)
            staging, newer = publish_copy(original, model_dir, 2, minutes=5)
            os.replace(staging, newer)
            published = time.monotonic()
            after = status_by_worker(url, workers)  # includes the wait for the slowest worker
            while set(after.values()) != {newer.name}:
                after = status_by_worker(url, workers)
            all_swapped = time.monotonic() - published
            # 0.2 s of grace for a request that read the old set just before its worker
            # swapped, still in flight; then 100 answers that must all come from the new set
            grace_ends = published + all_swapped + 0.2
            wait_for(lambda: sum(t > grace_ends for t, _ in list(answers)) > 100)
        finally:
            stop.set()
            for c in clients:
                c.join()

    assert failures == []
    assert set(after) == set(before), "a worker process was replaced instead of reloading"
    late = [name for t, name in answers if t > grace_ends]
    assert len(late) > 100 and set(late) == {newer.name}
    # each worker polls every --reload-seconds; loading a set takes a fraction of a second
    assert all_swapped < reload_seconds + 2.0, f"last worker swapped after {all_swapped:.2f} s"
    log = (tmp_path / "api.log").read_text()
    assert log.count(f"serving model set {newer.name}") == workers
