"""The Streamlit page (AppTest) against a real running API serving a real trained model set.

Every value the page shows is compared with the API's own answer to the same request.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from streamlit.testing.v1 import AppTest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.servers import running_api, wait_until_served
from smarthome.ui import bulk
from smarthome.ui.i18n import TEXTS
from tests.conftest import DEVICE, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(api_server: str) -> str:
    return api_server


def ask(api: str, path: str, body: Any = None) -> Any:
    method = requests.post if body is not None else requests.get
    response = method(f"{api}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def page(api: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_ui.py"), default_timeout=30)
    at.session_state["api_url"] = api
    at.run()
    assert not at.exception
    return at


def fill(at: AppTest, form: str, values: dict[str, Any]) -> AppTest:
    for field, value in values.items():
        key = f"{form}_{field}"
        widget = {"DeviceType": at.selectbox, "UserPreferences": at.radio}.get(
            field, at.number_input
        )
        widget(key=key).set_value(value)
    label = TEXTS[f"submit_{form}"][at.session_state["lang"]]
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.main.metric}


def test_efficiency_form_shows_the_apis_prediction(page: AppTest, api: str) -> None:
    fill(page, "efficiency", DEVICE)
    expected = ask(api, "/predict_efficiency", DEVICE)
    shown = metrics(page)
    label = "Efficient" if expected["predicted_efficiency_class"] == 1 else "Not efficient"
    assert shown["Prediction"] == label
    assert shown["Probability"] == f"{expected['probability_of_predicted_class']:.1%}"
    assert any(expected["model_set"] in c.value for c in page.caption)


def test_malfunction_form_shows_the_estimate_and_the_quality_note(page: AppTest, api: str) -> None:
    body = {k: v for k, v in DEVICE.items() if k != "MalfunctionIncidents"}
    fill(page, "malfunction", body)
    expected = ask(api, "/predict_malfunction", body)
    assert metrics(page)["Expected malfunction incidents"] == (
        f"{expected['predicted_malfunctions']:.2f}"
    )
    if expected.get("note"):
        assert expected["note"] in [i.value for i in page.info]


def test_segment_form_shows_the_segment_its_description_and_profile(
    page: AppTest, api: str
) -> None:
    fill(page, "segment", DEVICE)
    expected = ask(api, "/get_device_segment", DEVICE)
    assert metrics(page)["Segment"] == str(expected["device_segment_id"])
    assert expected["description"] in [i.value for i in page.info]
    # how the segment differs from the average device, next to this device's values
    table = page.main.dataframe[0].value
    assert list(table["Your device"]) == [DEVICE[f] for f in DEVICE if f != "DeviceType"]


def test_status_shows_the_loaded_set(page: AppTest, api: str) -> None:
    status = ask(api, "/")
    sidebar = " ".join(m.value for m in page.sidebar.markdown)
    assert status["model_set"] in sidebar
    assert [s.value for s in page.sidebar.success] == ["API reachable"]


def test_model_history_charts_every_set(page: AppTest, api: str) -> None:
    sets = ask(api, "/models")["sets"]
    table = page.main.dataframe[0].value  # the sets table of the history tab
    assert sorted(table["set_name"]) == sorted(s["name"] for s in sets)
    charts = page.get("vega_lite_chart")
    clusters = ask(api, "/segments")["clusters"]["clusters"]
    # 3 learning curves + 2 charts per segment
    assert len(charts) >= 3 + len(clusters)


def test_segments_section_shows_each_generated_description(page: AppTest, api: str) -> None:
    descriptions = [c["description"] for c in ask(api, "/segments")["clusters"]["clusters"]]
    headers = [h.value for h in page.main.subheader]
    assert len([h for h in headers if h.startswith("Segment ")]) == len(descriptions)
    shown = [i.value for i in page.main.info]
    assert all(d in shown for d in descriptions)


def test_language_switch_translates_the_page_and_keeps_results(page: AppTest) -> None:
    fill(page, "efficiency", DEVICE)
    english = metrics(page)
    page.radio(key="lang").set_value("id").run()
    assert not page.exception
    assert [t.label for t in page.tabs] == [
        TEXTS[f"tab_{n}"]["id"]
        # no stream runs against this API, so the Pipeline tab comes last
        for n in ("efficiency", "malfunction", "segment", "bulk", "history", "segments")
        + ("drift", "pipeline", "live")
    ]
    shown = metrics(page)
    assert shown["Probabilitas"] == english["Probability"]
    assert shown["Prediksi"] in ("Efisien", "Tidak efisien")
    assert [s.value for s in page.sidebar.success] == ["API dapat dihubungi"]
    usage = page.number_input(key="efficiency_UsageHoursPerDay")
    assert (usage.label, usage.value) == ("Pemakaian (jam per hari)", DEVICE["UsageHoursPerDay"])
    assert page.radio(key="efficiency_UserPreferences").value == DEVICE["UserPreferences"]


def test_bulk_upload_predicts_every_row_and_flags_bad_ones(
    page: AppTest, api: str, dataset_path
) -> None:
    rows = pd.read_csv(dataset_path).head(40)
    bad = rows.iloc[[0]].assign(UserID=99999, DeviceType="Toaster")
    upload = pd.concat([rows, bad]).to_csv(index=False).encode()
    page.file_uploader(key="bulk_file").set_value(("devices.csv", upload, "text/csv")).run()
    assert not page.exception
    assert any(w.value.startswith("41 rows: 40 predicted, 1 rejected") for w in page.warning)
    table = next(d.value for d in page.main.dataframe if "error" in d.value.columns)
    assert list(table.columns[:6]) == ["UserID", *bulk.RESULT_COLUMNS]  # answers first
    good = rows.drop(columns=["UserID", "SmartHomeEfficiency"]).to_dict("records")
    efficiency = ask(api, "/predict_efficiency", good)
    malfunction = ask(api, "/predict_malfunction", good)
    segment = ask(api, "/get_device_segment", good)
    assert list(table["UserID"][:40].astype(int)) == list(rows["UserID"])
    assert list(table["predicted_efficiency_class"][:40]) == [
        e["predicted_efficiency_class"] for e in efficiency
    ]
    assert list(table["probability_of_predicted_class"][:40]) == pytest.approx(
        [e["probability_of_predicted_class"] for e in efficiency]
    )
    assert list(table["predicted_malfunctions"][:40]) == pytest.approx(
        [m["predicted_malfunctions"] for m in malfunction]
    )
    assert list(table["device_segment_id"][:40]) == [s["device_segment_id"] for s in segment]
    assert "DeviceType" in table["error"].iloc[40]
    assert pd.isna(table["predicted_efficiency_class"].iloc[40])
    assert "Download the predictions" in [b.label for b in page.get("download_button")]


def test_a_wrong_api_url_is_explained(api: str) -> None:
    at = AppTest.from_file(str(ROOT / "app_ui.py"), default_timeout=30)
    at.session_state["api_url"] = api + "/not-the-api"
    at.run()
    assert not at.exception
    assert any("does not know this request" in e.value for e in at.error)


def test_a_new_model_set_shows_up_without_restarting_anything(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """The pipeline publishes a set while API and page run: status and history show it."""
    model_dir = tmp_path / "models"
    first = registry.newest_set(trained_model_dir)
    shutil.copytree(first, model_dir / first.name)
    workers = 2  # the default on this machine, pinned so the wait below knows how many
    with running_api(model_dir, tmp_path / "api.log", "--workers", str(workers)) as url:
        at = AppTest.from_file(str(ROOT / "app_ui.py"), default_timeout=30)
        at.session_state["api_url"] = url
        at.run()
        assert first.name in " ".join(m.value for m in at.sidebar.markdown)
        newer = registry.set_name(registry.set_number(first) + 1, datetime(2999, 1, 1))
        staging = registry.tmp_dir(model_dir) / newer
        shutil.copytree(first, staging)
        os.replace(staging, model_dir / newer)  # published atomically, as training does
        wait_until_served(url, newer, workers)  # the page may ask any worker
        at.run()
        assert not at.exception
        assert newer in " ".join(m.value for m in at.sidebar.markdown)
        history = at.main.dataframe[0].value
        assert sorted(history["set_name"]) == sorted([first.name, newer])


def _post_bad_record() -> None:
    """A page that sends what the forms never could: the API's 4xx must read clearly."""
    import streamlit as st

    from smarthome.ui.client import ApiError
    from smarthome.ui.common import client, show_error

    try:
        client().predict_efficiency({"DeviceType": "Toaster", "UsageHourPerDay": 3})
    except ApiError as error:
        show_error(error)
    else:
        st.write("accepted")


def test_an_api_4xx_is_shown_with_the_fields_it_names(api: str) -> None:
    at = AppTest.from_function(_post_bad_record, default_timeout=30)
    at.session_state["api_url"] = api
    at.run()
    assert not at.exception
    assert at.error[0].value.startswith("The API rejected the input: ")
    details = at.markdown[0].value
    assert "DeviceType" in details and "UsageHourPerDay" in details
