"""The Pipeline and Live tabs without Kafka: what training is really doing, the rate chart's
axis labels, and a Live tab that says Kafka does not answer (AppTest, the real API code)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from smarthome.api import create_app
from smarthome.contracts import model_sets as registry
from smarthome.devtools.ports import free_port
from smarthome.observe.status import StatusSource
from smarthome.ui.status import RATE_FORMAT, TIME_FORMAT, rate_chart
from tests.conftest import ROOT
from tests.helpers.fake_sets import FakeSet
from tests.helpers.samples import sample_manifest, write_set
from tests.helpers.wsgi import serve


@pytest.fixture
def api_with_sets_1_and_6(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The API over a model folder holding sets 1 and 6, Kafka nowhere."""
    model_dir = tmp_path / "m"
    for number in (1, 6):
        write_set(model_dir, sample_manifest(number))
    source = StatusSource(f"127.0.0.1:{free_port()}", "t", "g", tmp_path / "b", model_dir)
    app = create_app(model_dir, reload_seconds=0, loader=FakeSet, status_source=source)
    with serve(app) as url:
        yield url, model_dir


def _page(url: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_ui.py"), default_timeout=30)
    at.session_state["api_url"] = url
    return at.run()


def _training(at: AppTest) -> tuple[str, str]:
    """The Training stage's value, and the caption under it."""
    labels = [m.label for m in at.metric]
    index = labels.index("Training")
    return at.metric[index].value, [c.value for c in at.caption if "model sets" in c.value][0]


def test_training_shows_the_set_being_built_or_a_waiting_watcher_never_a_guess(
    api_with_sets_1_and_6: tuple[str, Path],
) -> None:
    url, model_dir = api_with_sets_1_and_6
    at = _page(url)
    assert not at.exception
    assert _training(at)[0] == "not running"
    with open(model_dir / registry.TRAINING_LOCK, "a+") as lock:  # as spark_training.py does
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        at = _page(url)  # a --watch between sets: the lock held, nothing in .tmp/
        value, caption = _training(at)
        assert value == "waiting" and "waits for new batch files; 2 model sets" in caption
        (registry.tmp_dir(model_dir) / registry.set_name(7)).mkdir(parents=True)
        at = _page(url)  # set 7 being built: its own number, not "set 3" (2 sets + 1)
        assert _training(at)[0] == "set 7…"
        at.radio(key="lang").set_value("id").run()
        assert [m.value for m in at.metric if m.label == "Pelatihan"] == ["set 7…"]
    assert not at.exception


def test_the_live_tab_says_kafka_does_not_answer_and_shows_no_traceback(
    api_with_sets_1_and_6: tuple[str, Path],
) -> None:
    url, _ = api_with_sets_1_and_6
    at = _page(url)
    assert not at.exception
    assert any(
        w.value.startswith("Kafka does not answer at") and "no Kafka broker answers" in w.value
        for w in at.warning
    )
    figures = {m.label: m.value for m in at.metric}
    assert figures["Recent predictions"] == "0" and figures["Recent alerts"] == "0"
    assert figures["Predictions/s"] == "-" and figures["Latency (median)"] == "-"
    at.radio(key="lang").set_value("id").run()
    assert not at.exception
    assert any(w.value.startswith("Kafka tidak menjawab di") for w in at.warning)
    assert "Prediksi/detik" in [m.label for m in at.metric]


def test_the_rate_chart_labels_time_in_seconds_and_rates_in_whole_records() -> None:
    # Vega's defaults label half-second time ticks ".500" and a flat line's rate ticks
    # "0.000000": the axes name their formats, ticks at least a second and a record/s apart
    start = pd.Timestamp("2025-01-01 12:00:00")
    flat = pd.DataFrame(
        {"time": [start + pd.Timedelta(milliseconds=500 * i) for i in range(4)], "rate": 0.0}
    )
    spec = rate_chart(flat).to_dict()
    x, y = spec["encoding"]["x"], spec["encoding"]["y"]
    assert x["axis"] == {"format": TIME_FORMAT, "tickMinStep": 1000} and TIME_FORMAT == "%H:%M:%S"
    assert y["axis"] == {"format": RATE_FORMAT, "tickMinStep": 1} and RATE_FORMAT == ",.0f"
    assert y["scale"]["domain"] == [0, 1.0]  # an idle stream still has a 0..1 scale
    busy = flat.assign(rate=[980.0, 1010.5, 1200.0, 995.0])
    assert rate_chart(busy).to_dict()["encoding"]["y"]["scale"]["domain"] == [0, 1200.0]
