"""``GET /metrics``: N requests raise the request counter by N, in one process and summed
over granian's worker processes; predicted rows, the loaded set and reloads are counted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from smarthome.api import create_app
from smarthome.contracts import model_sets as registry
from smarthome.devtools.servers import running_api
from tests.helpers.metrics import samples

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROW = {
    "DeviceType": "Thermostat",
    "UsageHoursPerDay": 7.5,
    "EnergyConsumption": 4.2,
    "UserPreferences": 1,
    "MalfunctionIncidents": 1,
    "DeviceAgeMonths": 20,
}


def requests_of(got: dict, endpoint: str, status: str) -> float:
    labels = (("endpoint", endpoint), ("status", status))
    return got.get(("smarthome_api_requests_total", labels), 0.0)


def test_counters_in_one_process(trained_model_dir: Path) -> None:
    app = create_app(trained_model_dir, reload_seconds=0)
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    for _ in range(7):
        assert client.post("/predict_efficiency", json=ROW).status_code == 200
    assert client.post("/predict_malfunction", json=[ROW] * 5).status_code == 200
    assert client.post("/predict_efficiency", json={"DeviceType": "Toaster"}).status_code == 422
    got = samples(client.get("/metrics").get_data(as_text=True))
    assert (
        requests_of(got, "/predict_efficiency", "200")
        - requests_of(before, "/predict_efficiency", "200")
        == 7
    )
    assert requests_of(got, "/predict_efficiency", "422") == 1
    assert got[("smarthome_api_predicted_rows_total", (("model", "efficiency"),))] == 7
    assert got[("smarthome_api_predicted_rows_total", (("model", "malfunction"),))] == 5
    count = (("endpoint", "/predict_efficiency"),)
    assert got[("smarthome_api_request_seconds_count", count)] == 8
    newest = registry.newest_set(trained_model_dir)
    assert got[("smarthome_api_model_set_number", ())] == registry.set_number(newest)
    assert got[("smarthome_api_model_set_rows_trained", ())] > 0
    assert got[("smarthome_api_reloads_total", ())] == 1
    assert 0 <= got[("smarthome_api_model_set_age_seconds", ())] < 86_400


def test_counters_are_summed_over_worker_processes(trained_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    original = registry.newest_set(trained_model_dir)
    shutil.copytree(original, model_dir / original.name)
    with running_api(model_dir, tmp_path / "api.log", "--workers", "2") as url:
        session = requests.Session()
        workers = set()
        for _ in range(300):
            answer = session.post(f"{url}/predict_efficiency", json=ROW, timeout=10)
            assert answer.status_code == 200
        for _ in range(50):  # several fresh connections reach both workers
            workers.add(requests.get(f"{url}/", timeout=10).json()["worker_pid"])
        got = samples(requests.get(f"{url}/metrics", timeout=10).text)
    assert len(workers) == 2, f"only {workers} answered"
    assert requests_of(got, "/predict_efficiency", "200") == 300
    assert got[("smarthome_api_predicted_rows_total", (("model", "efficiency"),))] == 300
    assert got[("smarthome_api_reloads_total", ())] == 2  # each worker loaded the set once
    assert got[("smarthome_api_model_set_number", ())] == registry.set_number(original)
