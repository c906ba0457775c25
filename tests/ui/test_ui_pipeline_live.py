"""The Pipeline tab in headless Chromium against a live, slow stream (``make demo`` running).

Two looks a few seconds apart: the topic's record count and the batch file count grow, and
a newly trained model set shows up, all without reloading the page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from smarthome.devtools.ports import free_port
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def _number(text: str) -> int:
    digits = re.sub(r"[^\d]", "", text)
    return int(digits) if digits else -1


def _metric(panel, label: str) -> str:
    metric = panel.get_by_test_id("stMetric").filter(has_text=label).first
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def test_pipeline_tab_follows_a_live_stream_without_a_reload(
    browser,
    java_available: None,
    tmp_path: Path,
) -> None:
    state = tmp_path / "demo"
    kafka, controller, api, ui = (free_port() for _ in range(4))
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MODEL_", "BATCH_"))}
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "smarthome.devtools.demo", "--state-dir", str(state),
             "--kafka-port", str(kafka), "--kafka-controller-port", str(controller),
             "--api-port", str(api), "--ui-port", str(ui), "--rate", "25",
             "--batch-size", "100", "--max-batch-age", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while True:  # until the UI answers (the demo prints its URL once every stage started)
            assert demo.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{ui}/_stcore/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{ui}")
        tab = page.get_by_role("tab", name="Pipeline")
        tab.click()
        panel = page.get_by_role("tabpanel").filter(has_text="The stream, live")
        panel.get_by_text("records in smart_home_stream").wait_for()
        page.wait_for_timeout(3000)
        first_topic = _number(_metric(panel, "Topic"))
        first_batches = _number(_metric(panel, "Batch files"))
        page.wait_for_timeout(8000)  # 25 records/s, a batch file every 100 records
        second_topic = _number(_metric(panel, "Topic"))
        second_batches = _number(_metric(panel, "Batch files"))
        assert second_topic > first_topic > 0, (first_topic, second_topic)
        assert second_batches > first_batches, (first_batches, second_batches)

        first_set = _metric(panel, "API: newest set")
        deadline = time.monotonic() + 400
        while _metric(panel, "API: newest set") == first_set:  # no reload: the tab refreshes
            assert time.monotonic() < deadline, f"no new set shown; {first_set}"
            assert demo.poll() is None, log.read_text()[-3000:]
            page.wait_for_timeout(2000)
        assert re.fullmatch(r"set\d{4}", _metric(panel, "API: newest set"))
        assert page.get_by_test_id("stException").count() == 0
        page.close()
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: the demo stops every stage and Kafka
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
