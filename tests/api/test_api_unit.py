"""Fast API tests through Flask's test client with a small fake model set (no Spark).

They pin the HTTP contract (status codes, error format, field names, live reload) apart from
the real scorer; tests/api/test_api.py repeats the important ones against a real trained set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smarthome.api import create_app
from smarthome.contracts import model_sets as registry
from tests.conftest import ROOT
from tests.helpers.fake_sets import FakeSet
from tests.helpers.samples import rename_key, sample_clusters, sample_manifest, write_set

ROW = {
    "UserID": 1,
    "DeviceType": "Smart Speaker",
    "UsageHoursPerDay": 15.30718848124909,
    "EnergyConsumption": 1.9616068166289793,
    "UserPreferences": 1,
    "MalfunctionIncidents": 4,
    "DeviceAgeMonths": 36,
    "SmartHomeEfficiency": 1,
}
FEATURES = {k: v for k, v in ROW.items() if k not in ("UserID", "SmartHomeEfficiency")}


def publish(model_dir: Path, number: int, broken: str | None = None) -> Path:
    """A set folder, each newer than the last (names sort in publish order)."""
    path = write_set(model_dir, sample_manifest(number))
    if broken:
        (path / "broken").write_text(broken)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    publish(tmp_path, 1)
    return tmp_path


@pytest.fixture
def client(model_dir: Path):
    app = create_app(model_dir, reload_seconds=0, loader=FakeSet)
    return app.test_client()


def post(client, path: str, body: Any, content_type: str = "application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type)


def test_each_endpoint_answers_with_the_original_field_names(client) -> None:
    eff = post(client, "/predict_efficiency", ROW).get_json()
    assert eff == {
        "predicted_efficiency_class": 1,
        "label": "Efficient",
        "probability_of_predicted_class": 0.75,
        "model_set": "20260101T000100Z_set0001",
    }
    mal = post(client, "/predict_malfunction", ROW).get_json()
    assert mal["predicted_malfunctions"] == ROW["EnergyConsumption"] * 2
    assert mal["note"] == "no better than the mean"
    seg = post(client, "/get_device_segment", {**FEATURES, "UsageHoursPerDay": 1.0}).get_json()
    assert seg["device_segment_id"] == 0
    assert seg["description"] == sample_clusters().clusters[0].description


def test_segment_answer_adds_its_name_bahasa_text_and_efficient_share(client) -> None:
    seg = post(client, "/get_device_segment", {**FEATURES, "UsageHoursPerDay": 1.0}).get_json()
    profile = sample_clusters().clusters[0]
    assert type(seg["device_segment_id"]) is int
    assert seg["description"] == profile.description  # the original field, in English
    assert seg["description_id"] == profile.descriptions["id"] != profile.description
    assert seg["description_id"].startswith("Segmen 0 (")
    assert (seg["segment_name"], seg["segment_name_id"]) == (profile.name["en"], profile.name["id"])
    assert seg["efficient_share"] == profile.efficiency_rate


def test_list_request_answers_a_list_in_order(client) -> None:
    rows = [{**FEATURES, "UsageHoursPerDay": h} for h in (1.0, 20.0, 3.0)]
    answer = post(client, "/predict_efficiency", rows)
    assert answer.status_code == 200
    assert [a["predicted_efficiency_class"] for a in answer.get_json()] == [0, 1, 0]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expected"),
    [
        ('{"DeviceType": ', "application/json", 400, "body: not valid JSON"),
        ("", "application/json", 400, "body: empty"),
        (FEATURES, "text/plain", 415, "Content-Type: must be application/json"),
        (FEATURES, "application/x-www-form-urlencoded", 415, "Content-Type"),
        (
            {k: v for k, v in FEATURES.items() if k != "EnergyConsumption"},
            None,
            422,
            "EnergyConsumption: missing",
        ),
        ({**FEATURES, "UsageHourPerDay": 3.0}, None, 422, "UsageHourPerDay: unknown field"),
        ({**FEATURES, "DeviceAgeMonths": "36"}, None, 422, "DeviceAgeMonths: must be"),
        ({**FEATURES, "UserPreferences": True}, None, 422, "UserPreferences: must be"),
        (
            {**FEATURES, "UsageHoursPerDay": 30.5},
            None,
            422,
            "UsageHoursPerDay: must be less than or equal to 24",
        ),
        ({**FEATURES, "EnergyConsumption": -1}, None, 422, "EnergyConsumption: must be greater"),
        ({**FEATURES, "DeviceType": "Toaster"}, None, 422, "'Security System'"),
        ({**FEATURES, "DeviceAgeMonths": 2**70}, None, 422, "DeviceAgeMonths: must be less"),
        ({**FEATURES, "EnergyConsumption": 1e16}, None, 422, "EnergyConsumption: must be a num"),
        ([], None, 422, "body: empty list"),
        ([FEATURES] * 1001, None, 422, "at most 1000"),
        ("[1, 2]", None, 422, "item 0: record: must be a JSON object (got number)"),
        ([FEATURES, {**FEATURES, "UserPreferences": 2}], None, 422, "item 1: UserPreferences"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, body, content_type, status, expected):
    answer = post(client, "/predict_efficiency", body, content_type or "application/json")
    assert answer.status_code == status, answer.get_json()
    payload = answer.get_json()
    assert set(payload) == {"error", "details"}
    assert any(expected in d for d in payload["details"]), payload


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected_naming_the_field(client, token) -> None:
    body = json.dumps(FEATURES).replace("15.30718848124909", token)
    answer = post(client, "/predict_efficiency", body)
    assert answer.status_code == 422
    assert answer.get_json()["details"] == [
        f"UsageHoursPerDay: {token} is not valid JSON; send a finite number"
    ]


def test_json_content_type_with_charset_and_integral_floats_are_accepted(client) -> None:
    body = {**FEATURES, "DeviceAgeMonths": 36.0}
    answer = post(client, "/predict_efficiency", body, "application/json; charset=utf-8")
    assert answer.status_code == 200, answer.get_json()


def test_whole_dataset_row_is_accepted_on_every_endpoint(client) -> None:
    for path in ("/predict_efficiency", "/predict_malfunction", "/get_device_segment"):
        assert post(client, path, ROW).status_code == 200, path
    # MalfunctionIncidents is the regressor's label: not needed there
    no_label = {k: v for k, v in FEATURES.items() if k != "MalfunctionIncidents"}
    assert post(client, "/predict_malfunction", no_label).status_code == 200
    assert post(client, "/predict_efficiency", no_label).status_code == 422


def test_oversized_body_is_413(client) -> None:
    answer = post(client, "/predict_efficiency", " " * (2 * 1024 * 1024) + json.dumps(FEATURES))
    assert answer.status_code == 413
    assert "larger than" in answer.get_json()["details"][0]


def test_unknown_path_and_wrong_method_are_json(client) -> None:
    missing = client.get("/predict_everything")
    assert missing.status_code == 404 and "error" in missing.get_json()
    wrong = client.get("/predict_efficiency")
    assert wrong.status_code == 405 and "error" in wrong.get_json()
    assert "POST" in wrong.headers["Allow"]


def test_post_healthz_is_a_benchmark_tool_off_by_default(model_dir: Path) -> None:
    """The POST no-op is not an API: 405 (as the OpenAPI document says) unless asked for."""
    served = create_app(model_dir, reload_seconds=0, loader=FakeSet).test_client()
    answer = post(served, "/healthz", FEATURES)
    assert answer.status_code == 405
    assert sorted(answer.headers["Allow"].split(", ")) == ["GET", "HEAD", "OPTIONS"]
    assert served.get("/healthz").get_json() == {"status": "ok"}
    bench = create_app(model_dir, reload_seconds=0, loader=FakeSet, bench_noop=True)
    assert post(bench.test_client(), "/healthz", FEATURES).get_json() == {"status": "ok"}


def test_no_model_set_is_503_saying_how_to_train(tmp_path: Path) -> None:
    client = create_app(tmp_path, reload_seconds=0, loader=FakeSet).test_client()
    answer = post(client, "/predict_efficiency", FEATURES)
    assert answer.status_code == 503
    assert answer.get_json()["error"] == (
        f"no model set in {tmp_path}; train one with: spark-submit spark_training.py"
    )
    status = client.get("/").get_json()
    assert status["status"] == "no model set" and status["model_set"] is None
    assert status["metrics"] == {} and status["manifest"] is None
    # validation still comes first: a client mistake is never hidden behind the 503
    assert post(client, "/predict_efficiency", {"x": 1}).status_code == 422


def test_a_set_published_after_start_is_served_before_the_reload_thread_sees_it(
    tmp_path: Path,
) -> None:
    # a server process started before the first set whose reload thread has not looked
    # since (reload_seconds=0: it never does): a client is never told "no model set" while
    # one is on disk
    client = create_app(tmp_path, reload_seconds=0, loader=FakeSet).test_client()
    assert post(client, "/predict_efficiency", FEATURES).status_code == 503
    publish(tmp_path, 1)
    answer = post(client, "/predict_efficiency", FEATURES)
    assert answer.status_code == 200, answer.get_json()


def test_newer_set_is_swapped_in_and_broken_one_skipped(model_dir: Path) -> None:
    app = create_app(model_dir, reload_seconds=0, loader=FakeSet)
    holder, client = app.extensions["model_holder"], app.test_client()
    publish(model_dir, 2)
    assert holder.check() is True
    assert post(client, "/predict_efficiency", FEATURES).get_json()["model_set"].endswith("2")
    publish(model_dir, 3, broken="scoring.json: missing")
    assert holder.check() is False
    assert holder.check() is False  # remembered, not retried
    status = client.get("/").get_json()
    assert status["model_set"].endswith("set0002")
    assert list(status["skipped_sets"].values()) == ["scoring.json: missing"]
    models = client.get("/models").get_json()["sets"]
    assert [s["name"][-1] for s in models] == ["3", "2", "1"]
    assert [s["loaded"] for s in models] == [False, True, False]
    assert models[0]["error"] == "scoring.json: missing"


def test_status_models_and_segments_answer_the_typed_files(client, model_dir: Path) -> None:
    manifest = sample_manifest(1)
    status = client.get("/").get_json()
    assert status["manifest"] == manifest.model_dump(mode="json")
    assert status["loaded_model_set"] == 1
    eff = manifest.models.efficiency
    assert status["metrics"]["efficiency"] == {
        "metrics": eff.metrics.model_dump(),
        "baseline": eff.baseline.model_dump(),
        "beats_baseline": eff.beats_baseline,
    }
    assert set(status["metrics"]["malfunction"]) == {
        "metrics", "baseline", "beats_baseline", "beats_baseline_rule",
    }  # fmt: skip
    assert set(status["metrics"]["clustering"]) == {"metrics", "baseline"}
    (entry,) = client.get("/models").get_json()["sets"]
    assert entry["manifest"] == status["manifest"] and entry["error"] is None
    segments = client.get("/segments").get_json()
    assert segments["clusters"] == sample_clusters().model_dump(mode="json")


def test_a_renamed_manifest_key_is_the_sets_error_not_a_gap(model_dir: Path) -> None:
    """The newest set's manifest lost a key: it is skipped, and GET /models says why."""
    newest = publish(model_dir, 2)
    rename_key(newest / registry.MANIFEST, "models.efficiency.metrics.accuracy", "acc")
    client = create_app(model_dir, reload_seconds=0, loader=FakeSet).test_client()
    expected = f"{newest / registry.MANIFEST}: field models.efficiency.metrics.accuracy: missing"
    status = client.get("/").get_json()
    assert status["model_set"].endswith("set0001")
    assert status["skipped_sets"][newest.name].startswith(expected)
    broken, served = client.get("/models").get_json()["sets"]
    assert broken["name"] == newest.name and broken["manifest"] is None
    assert broken["error"].startswith(expected)
    assert served["error"] is None and served["manifest"]["set"] == 1


def test_the_default_loader_checks_the_manifest_and_the_clusters(tmp_path: Path) -> None:
    from smarthome.contracts.artefact import ContractError
    from smarthome.scoring.served import ServedSet

    folder = write_set(tmp_path, sample_manifest(1), sample_clusters())
    rename_key(folder / registry.CLUSTERS, "clusters.0.id", "cluster")
    with pytest.raises(ContractError, match=r"clusters\.json: field clusters\.0\.id: missing"):
        ServedSet.load(folder)
    folder = write_set(tmp_path, sample_manifest(2), sample_clusters())
    data = json.loads((folder / registry.MANIFEST).read_text())
    data["models"]["clustering"]["k"] = 3
    (folder / registry.MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ContractError, match="field k: is 2, the manifest's models.clustering.k"):
        ServedSet.load(folder)


def test_broken_newest_set_at_start_falls_back_to_an_older_one(model_dir: Path) -> None:
    publish(model_dir, 2, broken="bad")
    app = create_app(model_dir, reload_seconds=0, loader=FakeSet)
    assert app.extensions["model_holder"].current_name.endswith("set0001")


def test_openapi_document_is_generated_from_the_validating_models(client) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    device = doc["components"]["schemas"]["DeviceRequest"]
    assert device["additionalProperties"] is False
    assert set(device["required"]) == {
        "DeviceType",
        "UsageHoursPerDay",
        "EnergyConsumption",
        "UserPreferences",
        "DeviceAgeMonths",
        "MalfunctionIncidents",
    }
    assert device["properties"]["UsageHoursPerDay"]["maximum"] == 24
    responses = doc["paths"]["/predict_efficiency"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(responses)


def test_cors_header_is_sent(client) -> None:
    answer = client.get("/", headers={"Origin": "http://localhost:8501"})
    assert answer.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:8501")


def test_api_package_never_imports_pyspark() -> None:
    code = "import sys, smarthome.api, app_api; sys.exit('pyspark' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
