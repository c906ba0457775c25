"""The Live tab in headless Chromium: ``streamlit run app_ui.py`` and ``python app_api.py``
against a real broker, predictions and alerts committed to their topics in transactions (in
the scorer's message formats) while the page is open; they show up, and grow, without a
reload."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smarthome.devtools.servers import running_api, running_ui
from tests.helpers.predictions import alert, prediction, send_in_transaction

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def topics(make_topic: Any) -> tuple[str, str]:
    """A predictions topic of 3 partitions and an alerts topic, as the scorer makes them."""
    return make_topic(3), make_topic(3)


@pytest.fixture
def ui_url(kafka_broker: Any, topics: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    """The UI talking to an API that reads ``topics`` on the test broker (no model set)."""
    predictions, alerts = topics
    (tmp_path / "models").mkdir()
    flags = ["--bootstrap-servers", kafka_broker.bootstrap_servers,
             "--predictions-topic", predictions, "--alerts-topic", alerts,
             "--server", "waitress", "--batch-dir", str(tmp_path / "batches")]  # fmt: skip
    with (
        running_api(tmp_path / "models", tmp_path / "api.log", *flags) as api,
        running_ui(api, tmp_path / "ui.log") as url,
    ):
        yield url


def _figure(panel: Any, label: str) -> int:
    metric = panel.get_by_test_id("stMetric").filter(has_text=label).first
    text = metric.get_by_test_id("stMetricValue").inner_text()
    return int(re.sub(r"[^\d]", "", text) or -1)


def _wait_for(page: Any, panel: Any, label: str, expected: int) -> None:
    for _ in range(60):  # the tab refreshes itself every 2 s: no reload, no click
        if _figure(panel, label) == expected:
            return
        page.wait_for_timeout(1000)
    raise AssertionError(f"{label}: {_figure(panel, label)}, never {expected}")


def test_the_live_tab_shows_predictions_and_alerts_as_they_are_committed(
    browser: Any, kafka_broker: Any, topics: tuple[str, str], ui_url: str
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    predictions, alerts = topics
    first = [prediction(n, 500 + n) for n in range(8)]
    send_in_transaction(
        bootstrap, [(predictions, p) for p in first] + [(alerts, alert(p)) for p in first[:3]]
    )

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(ui_url)
    # the first render runs the app's imports cold: over 30 s once on a slow, busy machine
    page.get_by_role("tab", name="Live").wait_for(timeout=120_000)
    page.get_by_role("tab", name="Live").click()
    panel = page.get_by_role("tabpanel").filter(has_text="Every record scored as it arrives")
    panel.get_by_text(f"Newest predictions ({predictions})").wait_for()
    _wait_for(page, panel, "Recent alerts", 3)
    assert _figure(panel, "Recent predictions") == 8

    more = [prediction(100 + n, 700 + n) for n in range(12)]
    send_in_transaction(
        bootstrap, [(predictions, p) for p in more] + [(alerts, alert(p)) for p in more[:4]]
    )
    send_in_transaction(bootstrap, [(predictions, prediction(999, 999))], commit=False)
    _wait_for(page, panel, "Recent predictions", 20)  # the aborted one is never shown
    _wait_for(page, panel, "Recent alerts", 7)
    assert panel.get_by_text("record produced → scored; max 40 ms").count() == 1
    assert panel.get_by_test_id("stDataFrame").count() == 2  # alerts and predictions
    assert page.get_by_test_id("stException").count() == 0

    page.get_by_text("Bahasa Indonesia").click()
    page.get_by_role("tab", name="Langsung").click()
    page.get_by_text(f"Prediksi terbaru ({predictions})").wait_for()
    assert page.get_by_test_id("stException").count() == 0
    page.close()
