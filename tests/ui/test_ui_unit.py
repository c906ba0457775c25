"""Fast UI tests without a real API: texts, tables, bulk parsing, client, API down or hung."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from streamlit.testing.v1 import AppTest

from smarthome.api import create_app
from smarthome.contracts import model_sets as registry
from smarthome.contracts.api import SetEntry
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.records import DEVICE_FEATURES, NUMERIC_FEATURES
from smarthome.devtools.servers import free_port
from smarthome.ui import bulk, charts, data
from smarthome.ui import client as client_module
from smarthome.ui.client import ApiClient, ApiError
from smarthome.ui.forms import DEFAULTS
from smarthome.ui.i18n import LANGUAGES, TEXTS, t
from tests.conftest import ROOT
from tests.helpers.fake_sets import FakeSet
from tests.helpers.samples import rename_key, sample_clusters, sample_manifest, write_set
from tests.helpers.wsgi import serve


def entry(manifest: Manifest | None, error: str | None = None, name: str = "") -> SetEntry:
    """One set of ``GET /models`` as the client hands it to the page."""
    name = name or (manifest.name if manifest else registry.set_name(9))
    return SetEntry(name=name, loaded=False, manifest=manifest, error=error)


def test_every_text_has_both_languages_with_the_same_placeholders() -> None:
    placeholders = re.compile(r"{(\w+)}")
    for key, entry in TEXTS.items():
        assert set(entry) == set(LANGUAGES), key
        assert entry["en"].strip() and entry["id"].strip(), key
        assert set(placeholders.findall(entry["en"])) == set(placeholders.findall(entry["id"])), key
    assert t("tab_efficiency", "id") == "Efisiensi"
    assert "http://x" in t("err_unreachable", "id", url="http://x")


def test_history_frame_reads_metrics_and_baselines_oldest_first() -> None:
    newer = sample_manifest(2, rows=2000, accuracy=0.9)
    older = sample_manifest(1, rows=1000, accuracy=0.8)
    frame = data.history_frame([entry(newer), entry(older)])  # /models is newest first
    rmse = frame[frame["metric"] == "rmse"]
    assert list(rmse["rows"]) == [1000, 2000]
    assert list(rmse["value"]) == [1.4, 1.4] and list(rmse["baseline"]) == [1.5, 1.5]
    acc = frame[frame["metric"] == "accuracy"].iloc[-1]
    assert (acc["value"], acc["baseline"], acc["set"]) == (0.9, 0.6, 2)
    sil = frame[frame["metric"] == "silhouette"].iloc[-1]
    assert sil["value"] == 0.4 and sil["baseline"] != sil["baseline"]  # NaN: no baseline
    for metric in data.HISTORY_METRICS:
        assert charts.learning_curve(frame, metric, "id").to_dict()


def test_history_charts_the_segments_efficient_share_spread_where_recorded() -> None:
    older = sample_manifest(1, rows=1000)  # a manifest that does not record the spread
    recorded = sample_manifest(2, rows=2000).model_dump()
    recorded["models"]["clustering"]["metrics"]["efficient_share_spread"] = 0.73
    newer = Manifest.model_validate(recorded)
    frame = data.history_frame([entry(newer), entry(older)])
    spread = frame[frame["metric"] == "efficient_share_spread"]
    assert list(spread["set"]) == [2] and list(spread["value"]) == [0.73]
    assert charts.learning_curve(frame, "efficient_share_spread", "en").to_dict()
    table = data.sets_table([entry(newer), entry(older)])
    assert table["efficient_share_spread"].iloc[0] == 0.73
    assert table["efficient_share_spread"].isna().iloc[1]


def test_an_unreadable_set_is_a_row_with_its_error_not_a_gap() -> None:
    good = sample_manifest(1)
    error = "spark_models/x/manifest.json: field models.efficiency.metrics.accuracy: missing"
    sets = [entry(None, error, registry.set_name(2)), entry(good)]
    assert list(data.history_frame(sets)["set"].unique()) == [1]
    assert data.unreadable(sets) == sets[:1]
    table = data.sets_table(sets)
    assert list(table["set"]) == [2, 1]
    assert table["error"].iloc[0] == error and table["error"].iloc[1] is None
    assert table["accuracy"].iloc[1] == good.models.efficiency.metrics.accuracy
    assert "error" not in data.sets_table([entry(good)]).columns


def test_segment_profiles_are_compared_with_the_overall_mean() -> None:
    clusters = sample_clusters()
    heavy = clusters.clusters[1]
    profile = data.profile_frame(heavy, clusters.overall.means)
    assert list(profile["feature"]) == list(NUMERIC_FEATURES)
    overall = clusters.overall.means["UsageHoursPerDay"]
    assert overall == pytest.approx((1 * 100 + 9 * 300) / 400)
    assert profile["diff_pct"].iloc[0] == pytest.approx((9 - overall) / overall * 100)
    assert charts.profile_chart(profile, "en").to_dict()
    mix = data.device_mix_frame(heavy)
    assert dict(zip(mix["device"], mix["share"], strict=True))["Camera"] == 1.0
    assert charts.device_mix_chart(mix, "en").to_dict()


def test_an_empty_segment_has_no_profile_bars() -> None:
    clusters = sample_clusters()
    empty = clusters.clusters[0].model_copy(
        update={"size": 0, "means": dict.fromkeys(NUMERIC_FEATURES)}
    )
    assert data.profile_frame(empty, clusters.overall.means).empty


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


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real API code serving fake sets: set 1 fine, set 2's manifest lost a key."""
    write_set(tmp_path, sample_manifest(1))
    broken = write_set(tmp_path, sample_manifest(2))
    rename_key(broken / registry.MANIFEST, "models.efficiency.metrics.accuracy", "acc")
    app = create_app(tmp_path, reload_seconds=0, loader=FakeSet, metrics=False)
    with serve(app) as url:
        yield url, broken


def test_client_reads_every_answer_through_its_type(fake_api) -> None:
    url, broken = fake_api
    api = ApiClient(url)
    status = api.status()
    assert status.manifest == sample_manifest(1) and status.loaded_model_set == 1
    sets = api.models()
    assert [s.name for s in sets] == [broken.name, sample_manifest(1).name]
    assert sets[0].manifest is None and "models.efficiency.metrics.accuracy" in sets[0].error
    assert api.segments().clusters == sample_clusters()
    one = api.predict_efficiency(DEFAULTS)
    assert one.model_set == status.model_set and one.label in ("Efficient", "Not efficient")
    two = api.get_device_segment([DEFAULTS, {**DEFAULTS, "UsageHoursPerDay": 20.0}])
    assert [s.device_segment_id for s in two] == [0, 1]
    assert api.predict_malfunction(DEFAULTS).note == "no better than the mean"


def test_client_reports_an_answer_that_breaks_its_contract() -> None:
    app = Flask("wrong")
    app.get("/models")(lambda: {"model_dir": "x", "models": []})  # the old "models" spelling
    with serve(app) as url, pytest.raises(ApiError) as info:
        ApiClient(url).models()
    assert info.value.kind == "bad_response"
    assert info.value.message.startswith("GET /models: field sets: missing")


def test_history_tab_shows_the_unreadable_sets_error(fake_api) -> None:
    url, broken = fake_api
    at = _app(url).run()
    assert not at.exception
    table = at.main.dataframe[0].value  # the sets table: every set, newest first
    assert list(table["set_name"]) == [broken.name, sample_manifest(1).name]
    field = "field models.efficiency.metrics.accuracy: missing"
    assert field in table["error"].iloc[0] and str(broken) in table["error"].iloc[0]
    assert any(broken.name in w.value and field in w.value for w in at.warning)
