"""``GET /live``: the newest committed predictions and alerts, newest first, read through their
contract; Kafka down, a missing topic or a bad limit answered, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smarthome.api import create_app
from smarthome.devtools.ports import free_port
from smarthome.observe.live import LiveView, summary
from smarthome.observe.status import StatusSource
from tests.helpers.predictions import alert, prediction, send_in_transaction


def live_app(bootstrap: str, tmp_path: Path, predictions: str, alerts: str) -> Any:
    source = StatusSource(bootstrap, "t", "g", tmp_path / "b", tmp_path / "m",
                          predictions_topic=predictions, alerts_topic=alerts)  # fmt: skip
    return create_app(tmp_path / "m", reload_seconds=0, status_source=source).test_client()


def get_live(client: Any, query: str = "") -> dict[str, Any]:
    answer = client.get(f"/live{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    LiveView.model_validate(answer.get_json())  # the documented type, field for field
    return answer.get_json()


def test_kafka_down_is_an_empty_answer_with_the_reason(tmp_path: Path) -> None:
    client = live_app(f"127.0.0.1:{free_port()}", tmp_path, "p", "a")
    live = get_live(client, "?limit=5")
    assert live["reachable"] is False and "no Kafka broker answers" in live["reason"]
    assert live["predictions"] == [] and live["alerts"] == []
    assert live["predictions_per_second"] is None


def test_a_limit_that_is_not_1_to_200_is_a_422_naming_it(tmp_path: Path) -> None:
    client = live_app(f"127.0.0.1:{free_port()}", tmp_path, "p", "a")
    for bad in ("0", "201", "ten", "-1", "2.5", ""):
        answer = client.get(f"/live?limit={bad}")
        assert answer.status_code == 422, bad
        assert answer.get_json()["details"][0].startswith("limit: must be a whole number")


def test_the_newest_committed_predictions_and_alerts_come_first(
    kafka_broker: Any, make_topic: Any, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    predictions, alerts = make_topic(3), f"never-created-{free_port()}"
    client = live_app(bootstrap, tmp_path, predictions, alerts)
    live = get_live(client)
    assert live["reachable"] is True and live["predictions"] == []
    assert alerts in live["reason"] and "kafka_stream_predict.py" in live["reason"]

    alerts = make_topic(1)
    client = live_app(bootstrap, tmp_path, predictions, alerts)
    made = [prediction(n, 1000 + n, age_ms=(60 - n) * 10) for n in range(60)]
    send_in_transaction(bootstrap, [(predictions, p) for p in made[:30]])
    send_in_transaction(bootstrap, [(predictions, prediction(99, 99))], commit=False)  # aborted
    send_in_transaction(
        bootstrap,
        [(predictions, p) for p in made[30:]]
        + [(alerts, alert(p)) for p in made[50:]]
        + [(predictions, b'{"user_id": "not a prediction"}')],
    )
    live = get_live(client, "?limit=25")
    users = [p["user_id"] for p in live["predictions"]]
    assert users == [1000 + n for n in range(59, 34, -1)]  # the newest 25, newest first
    assert [a["prediction"]["user_id"] for a in live["alerts"]] == [
        1000 + n for n in range(59, 49, -1)
    ]
    assert live["unreadable"] == 1 and live["reason"] is None
    assert live["latency_ms_p50"] == 40 and live["latency_ms_max"] == 40
    assert 95 <= live["predictions_per_second"] <= 105  # one scored every 10 ms
    assert len(get_live(client)["predictions"]) == 50  # the default limit


def test_a_stream_that_stopped_has_no_rate_but_says_how_old_its_newest_is() -> None:
    old = [prediction(n, n, age_ms=600_000 - n) for n in range(3)][::-1]
    figures = summary(old, now=old[0].scored_time_ms / 1000 + 600)
    assert figures["predictions_per_second"] is None
    assert figures["newest_age_seconds"] == 600
