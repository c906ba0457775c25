"""Fast UI tests without a real API: texts, tables, bulk parsing, client, API down or hung."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from smarthome.contracts.records import DEVICE_FEATURES
from smarthome.devtools.servers import free_port
from smarthome.ui import bulk, charts, data
from smarthome.ui import client as client_module
from smarthome.ui.client import ApiClient, ApiError
from smarthome.ui.i18n import LANGUAGES, TEXTS, t
from tests.conftest import ROOT

MANIFEST = {
    "set_number": 2,
    "created_at": "2026-01-01T00:00:00Z",
    "row_count": 2000,
    "models": {
        "efficiency": {"metrics": {"accuracy": 0.9}, "baseline": {"accuracy": 0.6}},
        "malfunction": {"metrics": {"rmse": 1.4, "train_rmse": 1.0}, "baseline_rmse": 1.5},
        "clustering": {"metrics": {"silhouette": 0.4}},
    },
}
CLUSTERS = {
    "clusters": [
        {
            "cluster": 1,
            "size": 300,
            "means": {"UsageHoursPerDay": 20.0, "DeviceAgeMonths": 10},
            "device_type_shares": {"Camera": 1.0},
            "description": "heavy users",
        },
        {"cluster": 0, "size": 100, "means": {"UsageHoursPerDay": 4.0, "DeviceAgeMonths": 50}},
    ]
}


def test_every_text_has_both_languages_with_the_same_placeholders() -> None:
    placeholders = re.compile(r"{(\w+)}")
    for key, entry in TEXTS.items():
        assert set(entry) == set(LANGUAGES), key
        assert entry["en"].strip() and entry["id"].strip(), key
        assert set(placeholders.findall(entry["en"])) == set(placeholders.findall(entry["id"])), key
    assert t("tab_efficiency", "id") == "Efisiensi"
    assert "http://x" in t("err_unreachable", "id", url="http://x")


def test_history_frame_reads_metrics_and_baselines_oldest_first() -> None:
    older = {**MANIFEST, "set_number": 1, "row_count": 1000}
    frame = data.history_frame([MANIFEST, older])  # /models is newest first
    rmse = frame[frame["metric"] == "rmse"]
    assert list(rmse["rows"]) == [1000, 2000]
    assert list(rmse["value"]) == [1.4, 1.4] and list(rmse["baseline"]) == [1.5, 1.5]
    acc = frame[frame["metric"] == "accuracy"].iloc[-1]
    assert (acc["value"], acc["baseline"], acc["set"]) == (0.9, 0.6, 2)
    sil = frame[frame["metric"] == "silhouette"].iloc[-1]
    assert sil["value"] == 0.4 and sil["baseline"] != sil["baseline"]  # NaN: no baseline
    for metric in data.HISTORY_METRICS:
        assert charts.learning_curve(frame, metric, "id").to_dict()


def test_history_frame_tolerates_missing_keys() -> None:
    frame = data.history_frame([{}, {"models": "nonsense"}, {"set": 3}])
    assert frame.empty


def test_clusters_are_normalised_and_compared_with_the_overall_mean() -> None:
    clusters = data.normalize_clusters({"model_set": "x", "clusters": CLUSTERS})
    assert [c["id"] for c in clusters] == [0, 1]
    overall = data.overall_means(clusters)
    assert overall["UsageHoursPerDay"] == pytest.approx((4 * 100 + 20 * 300) / 400)
    profile = data.profile_frame(clusters[1], overall)
    assert list(profile["feature"]) == ["UsageHoursPerDay", "DeviceAgeMonths"]
    assert profile["diff_pct"].iloc[0] == pytest.approx((20 - 16) / 16 * 100)
    assert charts.profile_chart(profile, "en").to_dict()
    assert charts.device_mix_chart(data.device_mix_frame(clusters[1]), "en").to_dict()
    # a dict keyed by cluster id, and garbage, are both handled
    assert [c["id"] for c in data.normalize_clusters({"3": {"size": 1}})] == [3]
    assert data.normalize_clusters("nonsense") == []


def test_status_summary_reads_the_loaded_manifest() -> None:
    body = {"status": "ok", "model_set": "20260101T000000Z_set0002", "manifest": MANIFEST}
    assert data.status_summary(body) == {
        "set": "20260101T000000Z_set0002",
        "created_at": "2026-01-01T00:00:00Z",
        "rows": 2000,
    }
    assert data.status_summary({"status": "no model set", "model_set": None})["set"] is None


def test_bulk_csv_rows_are_checked_one_by_one() -> None:
    raw = (
        b"UserID,DeviceType,UsageHoursPerDay,EnergyConsumption,UserPreferences,"
        b"MalfunctionIncidents,DeviceAgeMonths\n"
        b"7,Camera,3.5,1.25,1,0,12\n"
        b"8,Toaster,30,1,1,0,12\n"
    )
    frame = bulk.read_devices(raw)
    assert bulk.device_record(frame.iloc[0]) == {
        "DeviceType": "Camera",
        "UsageHoursPerDay": 3.5,
        "EnergyConsumption": 1.25,
        "UserPreferences": 1,
        "MalfunctionIncidents": 0,
        "DeviceAgeMonths": 12,
    }
    with pytest.raises(Exception) as info:
        bulk.device_record(frame.iloc[1])
    details = "; ".join(info.value.details)
    assert "DeviceType" in details and "UsageHoursPerDay" in details


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b"DeviceType,UsageHoursPerDay\nCamera,1\n", "bulk_missing"),
        (",".join(DEVICE_FEATURES).encode() + b"\n", "bulk_empty"),
        (b"\xff\xfe\x00garbage\x00", "bulk_unreadable"),
    ],
)
def test_bulk_rejects_unusable_files_with_a_clear_message(raw: bytes, key: str) -> None:
    with pytest.raises(bulk.BulkInputError) as info:
        bulk.read_devices(raw)
    assert info.value.key in (key, "bulk_missing")
    assert t(info.value.key, "en", **info.value.values)


def test_template_csv_is_a_valid_upload() -> None:
    frame = bulk.read_devices(bulk.template_csv())
    assert [bulk.device_record(row)["DeviceType"] for _, row in frame.iterrows()]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers: a hung API."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_client_reports_an_api_that_is_down() -> None:
    with pytest.raises(ApiError) as info:
        ApiClient(f"http://127.0.0.1:{free_port()}").status()
    assert info.value.kind == "unreachable"
    with pytest.raises(ApiError) as info:
        ApiClient("localhost:5000").status()
    assert info.value.kind == "unreachable"


def test_client_reports_a_slow_api(silent_server: str) -> None:
    with pytest.raises(ApiError) as info:
        ApiClient(silent_server, read_timeout=0.3).models()
    assert info.value.kind == "timeout"


def _app(url: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_ui.py"), default_timeout=30)
    at.session_state["api_url"] = url
    return at


def _submit(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def test_page_with_the_api_down_shows_what_to_do_and_no_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    at = _app(url).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and all("Cannot reach the API at " + url in e for e in errors)
    assert any("python app_api.py" in e for e in errors)
    _submit(at, "Predict efficiency")
    assert not at.exception and not at.metric
    at.radio(key="lang").set_value("id").run()
    assert not at.exception
    assert any("tidak dapat dihubungi" in e.value for e in at.error)


def test_page_with_a_hung_api_reports_it_is_slow(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.5)
    at = _app(silent_server).run()
    assert not at.exception
    assert any("did not answer in time" in e.value for e in at.error)
    _submit(at, "Find segment")
    assert not at.exception
    assert any("did not answer in time" in e.value for e in at.error)


def test_overall_means_stated_by_clusters_json_win() -> None:
    stated = {**CLUSTERS["clusters"][0], "overall_means": {"UsageHoursPerDay": 12.0}}
    clusters = data.normalize_clusters([stated])
    assert data.overall_means(clusters) == {"UsageHoursPerDay": 12.0}
