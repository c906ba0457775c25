"""The API against a model set trained by the project's own code (``trained_model_dir``).

Through Flask's test client and over real HTTP (``api_server``: ``python app_api.py``):
answers equal the scorer's, the original README's curl calls work unchanged, and bad input
is a 4xx naming the field.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from smarthome.api import create_app
from smarthome.contracts import model_sets as registry
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.records import DEVICE_FEATURES, MALFUNCTION_FEATURES
from smarthome.scoring.model_set import ModelSet
from tests.conftest import require

pytestmark = pytest.mark.spark  # the trained set comes from a real local Spark


@pytest.fixture(scope="module")
def dataset_rows(dataset_path: Path) -> list[dict[str, Any]]:
    ints = {"UserID", "UserPreferences", "MalfunctionIncidents", "DeviceAgeMonths"}
    ints.add("SmartHomeEfficiency")
    with open(dataset_path, newline="") as fh:
        return [
            {
                k: (v if k == "DeviceType" else int(v) if k in ints else float(v))
                for k, v in r.items()
            }
            for r in csv.DictReader(fh)
        ]


@pytest.fixture(scope="module")
def model_set(trained_model_dir: Path) -> ModelSet:
    return ModelSet.load(registry.newest_set(trained_model_dir))


@pytest.fixture(scope="module")
def client(trained_model_dir: Path):
    return create_app(trained_model_dir, reload_seconds=0).test_client()


def expected(model_set: ModelSet, path: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the endpoint must answer, computed straight from the scorer."""
    if path == "/predict_efficiency":
        return [
            {
                "predicted_efficiency_class": c,
                "label": "Efficient" if c == 1 else "Not efficient",
                "probability_of_predicted_class": p,
                "model_set": model_set.name,
            }
            for c, p in model_set.predict_efficiency(rows)
        ]
    if path == "/predict_malfunction":
        return [
            {"predicted_malfunctions": v, "model_set": model_set.name}
            for v in model_set.predict_malfunction(rows)
        ]
    return [{"device_segment_id": c, "model_set": model_set.name} for c in model_set.segment(rows)]


def same(answer: dict[str, Any], want: dict[str, Any]) -> bool:
    return all(answer[k] == v for k, v in want.items())


PATHS = ["/predict_efficiency", "/predict_malfunction", "/get_device_segment"]


@pytest.mark.parametrize("path", PATHS)
def test_single_records_match_the_scorer(client, model_set, dataset_rows, path) -> None:
    for row in dataset_rows[:25]:
        answer = client.post(path, json=row)
        assert answer.status_code == 200, answer.get_json()
        assert same(answer.get_json(), expected(model_set, path, [row])[0])


def test_segment_answer_carries_the_generated_description(client, model_set) -> None:
    row = {
        "DeviceType": "Lights",
        "UsageHoursPerDay": 2.0,
        "EnergyConsumption": 1.0,
        "UserPreferences": 0,
        "MalfunctionIncidents": 0,
        "DeviceAgeMonths": 10,
    }
    answer = client.post("/get_device_segment", json=row).get_json()
    described = (model_set.path / registry.CLUSTERS).read_text()
    assert answer["description"] and answer["description"] in described


def test_malfunction_note_follows_the_manifest(client, model_set) -> None:
    from smarthome.api.results import malfunction_note

    row = {
        "DeviceType": "Camera",
        "UsageHoursPerDay": 2.0,
        "EnergyConsumption": 1.0,
        "UserPreferences": 0,
        "DeviceAgeMonths": 10,
    }
    answer = client.post("/predict_malfunction", json=row).get_json()
    manifest = Manifest.read(model_set.path / registry.MANIFEST)
    assert answer.get("note") == malfunction_note(manifest)


@pytest.mark.parametrize("path", PATHS)
def test_whole_dataset_over_http_in_lists_matches_the_scorer(
    api_server, model_set, dataset_rows, path
) -> None:
    with requests.Session() as http:
        for start in range(0, len(dataset_rows), 1000):
            chunk = dataset_rows[start : start + 1000]
            answer = http.post(api_server + path, json=chunk, timeout=60)
            assert answer.status_code == 200, answer.text[:500]
            got = answer.json()
            assert len(got) == len(chunk)
            want = expected(model_set, path, chunk)
            assert all(same(g, w) for g, w in zip(got, want, strict=True))


def test_status_and_models_describe_the_loaded_set(api_server, model_set) -> None:
    status = requests.get(api_server + "/", timeout=10).json()
    assert status["status"] == "ok" and status["model_set"] == model_set.name
    manifest = json.loads((model_set.path / registry.MANIFEST).read_text())  # as written
    assert status["loaded_model_set"] == manifest["set"]  # the original's field
    assert status["manifest"] == manifest  # the file as training wrote it
    models = requests.get(api_server + "/models", timeout=10).json()["sets"]
    assert models[0]["name"] == model_set.name and models[0]["loaded"] is True
    assert models[0]["manifest"] == manifest
    segments = requests.get(api_server + "/segments", timeout=10).json()
    assert segments["model_set"] == model_set.name
    assert segments["clusters"] == json.loads((model_set.path / registry.CLUSTERS).read_text())


def curl(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The original README's call, typed into a shell, unchanged but for the port."""
    require(shutil.which("curl") is not None, "curl")
    command = f"curl -X POST -H 'Content-Type: application/json' -d '{json.dumps(body)}' {url}"
    out = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(out.stdout)


#: the three calls of README.md "Using the API", bodies as written there
README_CALLS = {
    "/predict_efficiency": '{"DeviceType": "Smart Speaker", "UsageHoursPerDay": 15.3, '
    '"EnergyConsumption": 1.96, "UserPreferences": 1, "MalfunctionIncidents": 4, '
    '"DeviceAgeMonths": 36}',
    "/predict_malfunction": '{"DeviceType": "Camera", "UsageHoursPerDay": 7.0, '
    '"EnergyConsumption": 2.3, "UserPreferences": 0, "DeviceAgeMonths": 15}',
    "/get_device_segment": '{"DeviceType": "Thermostat", "UsageHoursPerDay": 20.5, '
    '"EnergyConsumption": 8.1, "UserPreferences": 1, "MalfunctionIncidents": 0, '
    '"DeviceAgeMonths": 50}',
}


@pytest.mark.parametrize("path", PATHS)
def test_original_readme_curl_calls_work(api_server, model_set, dataset_rows, path) -> None:
    body = json.loads(README_CALLS[path])
    answer = curl(api_server + path, body)
    assert same(answer, expected(model_set, path, [body])[0])
    row = dataset_rows[1]  # and a dataset row with only the endpoint's inputs
    body = {k: row[k] for k in (MALFUNCTION_FEATURES if "malfunction" in path else DEVICE_FEATURES)}
    assert same(curl(api_server + path, body), expected(model_set, path, [row])[0])


@pytest.mark.parametrize(
    ("data", "headers", "status", "expected_detail"),
    [
        ("{not json", {"Content-Type": "application/json"}, 400, "body: not valid JSON"),
        ('{"a": 1}', {"Content-Type": "text/plain"}, 415, "Content-Type: must be"),
        (
            '{"DeviceType": "Toaster"}',
            {"Content-Type": "application/json"},
            422,
            "DeviceType: must be 'Camera', 'Lights', 'Security System'",
        ),
        (" " * (1024 * 1024 + 1), {"Content-Type": "application/json"}, 413, "larger than"),
    ],
)
def test_bad_input_over_http(api_server, data, headers, status, expected_detail) -> None:
    answer = requests.post(
        api_server + "/predict_efficiency", data=data, headers=headers, timeout=30
    )
    assert answer.status_code == status
    body = answer.json()
    assert any(expected_detail in d for d in body["details"]), body


def test_unknown_path_over_http_is_json_404(api_server) -> None:
    answer = requests.get(api_server + "/predict", timeout=10)
    assert answer.status_code == 404 and answer.json()["error"] == "not found"
