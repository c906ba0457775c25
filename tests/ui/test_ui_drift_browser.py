"""The Drift tab in headless Chromium: ``streamlit run app_ui.py`` against the real API.

The API serves a copy of the session's trained set as champion, with real drift reports of
batches whose usage hours shifted (computed by ``smarthome.drift`` against the champion's
training rows) and a held candidate; the tab shows the alarm, the gate's reasons and charts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.promotion import PROMOTION, Promotion
from smarthome.devtools.batches import write_batches
from smarthome.devtools.servers import running_api, running_ui
from smarthome.drift.reports import Reference, compare, save
from smarthome.promotion.pointer import move_champion

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS_ENV = "SMARTHOME_SCREENSHOTS_DIR"


@pytest.fixture(scope="module")
def drift_model_dir(
    trained_model_dir: Path,
    dataset_batch_dir: Path,
    dataset_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    model_dir = tmp_path_factory.mktemp("drift_models")
    [trained] = registry.list_sets(trained_model_dir)
    champion = model_dir / trained.name
    shutil.copytree(trained, champion)
    move_champion(model_dir, champion.name, "first")
    shifted = tmp_path_factory.mktemp("drift_stream")
    frame = pd.read_csv(dataset_path).sample(1200, random_state=3)
    frame.iloc[600:, frame.columns.get_loc("UsageHoursPerDay")] = (
        frame.iloc[600:]["UsageHoursPerDay"] + 6
    ).clip(upper=24)
    frame.to_csv(shifted / "stream.csv", index=False)
    batches = write_batches(shifted / "stream.csv", shifted / "batches", 4, start_offset=10_000)
    reference = Reference(champion, dataset_batch_dir)
    for batch in batches:
        save(model_dir, compare(batch, reference))
    candidate = registry.set_name(registry.set_number(champion) + 4)
    (model_dir / candidate).mkdir()
    shutil.copy(champion / registry.MANIFEST, model_dir / candidate / registry.MANIFEST)
    Promotion(
        set=candidate, decided_at="2026-01-01T00:00:00+00:00", mode="gate", promoted=False,
        champion_before=champion.name, tolerance=0.02, held_out_rows=1000, checks=[],
        reasons=["drift: 2 of its 4 new batch(es) drifted (UsageHoursPerDay)"],
    ).write(model_dir / candidate / PROMOTION)  # fmt: skip
    return model_dir


@pytest.fixture(scope="module")
def ui_url(drift_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("drift_ui")
    with (
        running_api(drift_model_dir, logs / "api.log") as api,
        running_ui(api, logs / "streamlit.log") as url,
    ):
        yield url


def test_drift_tab_renders_alarm_reasons_and_charts(browser, ui_url: str, tmp_path_factory):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(ui_url)
    page.get_by_role("tab", name="Drift").wait_for(timeout=120_000)
    page.get_by_role("tab", name="Drift").click()
    alarm = page.get_by_text("Drift alarm on the newest batch")
    alarm.wait_for()
    assert alarm.inner_text().endswith(": UsageHoursPerDay")
    charts = page.get_by_test_id("stVegaLiteChart").filter(visible=True)
    charts.nth(1).wait_for()
    assert charts.count() == 2
    table = page.get_by_test_id("stDataFrame").filter(visible=True)
    table.first.wait_for()
    assert page.get_by_test_id("stException").count() == 0
    folder = os.environ.get(SHOTS_ENV)
    shots = Path(folder) if folder else tmp_path_factory.mktemp("drift_shots")
    page.wait_for_timeout(800)  # let the charts finish their transition before the picture
    page.screenshot(path=str(shots / "ui_drift.png"), full_page=True)
    page.close()
