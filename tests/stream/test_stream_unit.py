"""Fast tests of the stream scorer's parts: alerts, the message formats, dead letters, slots.

No broker and no trained set: a small rule-based set stands in for the models, and inputs are
plain objects shaped like kafka-python's ConsumerRecord. The real stage is tested against
real brokers in test_stream_kafka.py and test_stream_chaos.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from smarthome.contracts.artefact import ContractError
from smarthome.contracts.predictions import (
    parse_alert,
    parse_dead_letter,
    parse_prediction,
)
from smarthome.devtools.stream_outputs import tally
from smarthome.observe.scorer_metrics import ScorerCollector
from smarthome.stream.alerts import AlertRules
from smarthome.stream.kafka_clients import SlotLock, TransactionStuck, within
from smarthome.stream.outputs import score_messages
from smarthome.stream.scorer import ScorerStats
from tests.conftest import ROOT
from tests.helpers.scorer_inputs import NOW_MS, RECORD, Message, RuleSet


def message(offset: int = 0, **changes: Any) -> Message:
    record = {**RECORD, **changes}
    return Message(json.dumps(record).encode(), offset=offset, key=str(record["UserID"]).encode())


def test_alert_reasons_name_each_threshold_crossed_inclusively() -> None:
    rules = AlertRules(inefficient_probability=0.9, malfunctions=3)
    assert rules.reasons(1, 0.99, 1.0) == []  # efficient: never an inefficiency alert
    assert rules.reasons(0, 0.89, 2.99) == []
    assert rules.reasons(0, 0.9, 1.0) == [
        "predicted not efficient with probability 0.900 (alert at >= 0.9)"
    ]
    assert rules.reasons(1, 0.5, 3.0) == ["predicted 3.00 malfunction incidents (alert at >= 3)"]
    assert len(rules.reasons(0, 0.95, 4.2)) == 2


def test_each_record_gives_one_prediction_in_the_contract_format() -> None:
    messages = [message(0), message(1, UserID=8, UsageHoursPerDay=3.0, EnergyConsumption=9.75)]
    out = score_messages(messages, RuleSet(), AlertRules(0.9, 3.5), NOW_MS)
    assert out.dead_letters == [] and len(out.predictions) == 2
    assert out.event_times_ms == [NOW_MS - 40, NOW_MS - 40]
    key, value, source = out.predictions[1]
    assert (key, source) == (b"8", 1)
    prediction = parse_prediction(value)
    assert prediction.model_dump() == {
        "source_topic": "smart_home_stream",
        "source_partition": 1,
        "source_offset": 1,
        "user_id": 8,
        "device_type": "Lights",
        "predicted_efficiency_class": 0,
        "label": "Not efficient",
        "probability_of_predicted_class": 0.975,
        "predicted_malfunctions": 3.0,
        "device_segment_id": 1,
        "model_set": "20260101T000000Z_set0001",
        "event_time_ms": NOW_MS - 40,
        "scored_time_ms": NOW_MS,
    }
    # the hand-filled template is the JSON the standard encoder writes for the same values
    assert json.loads(value) == prediction.model_dump()
    first = parse_prediction(out.predictions[0][1])
    assert (first.label, first.predicted_efficiency_class) == ("Efficient", 1)


def test_floats_keep_every_digit_through_the_message() -> None:
    energy = 9.123456789012345  # probability = energy / 10, not a short decimal
    out = score_messages([message(0, EnergyConsumption=energy)], RuleSet(), AlertRules(), NOW_MS)
    assert parse_prediction(out.predictions[0][1]).probability_of_predicted_class == energy / 10


def test_an_alert_carries_its_prediction_and_the_reasons_in_words() -> None:
    messages = [
        message(0, UsageHoursPerDay=3.0, EnergyConsumption=9.75),  # inefficient, p 0.975
        message(1, UserID=9, DeviceAgeMonths=40),  # 4.0 malfunctions
        message(2, UserID=10),  # neither
    ]
    out = score_messages(messages, RuleSet(), AlertRules(0.96, 3.5), NOW_MS)
    assert len(out.predictions) == 3
    alerts = [parse_alert(value) for _, value, _ in out.alerts]
    assert [a.prediction.user_id for a in alerts] == [7, 9]
    assert alerts[0].reasons == [
        "predicted not efficient with probability 0.975 (alert at >= 0.96)"
    ]
    assert alerts[1].reasons == ["predicted 4.00 malfunction incidents (alert at >= 3.5)"]
    assert alerts[0].prediction == parse_prediction(out.predictions[0][1])
    assert [key for key, _, _ in out.alerts] == [b"7", b"9"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "record: not valid JSON"),
        (None, "record: empty message (null value)"),
        (b"\xff\xfe{}", "record: not valid UTF-8"),
        (json.dumps({**RECORD, "UsageHoursPerDay": 30.5}).encode(), "UsageHoursPerDay: must be"),
        (json.dumps({k: v for k, v in RECORD.items() if k != "DeviceType"}).encode(),
         "DeviceType: missing; it is required"),
        (json.dumps({**RECORD, "DeviceType": "Toaster"}).encode(), "DeviceType: must be"),
        (json.dumps({**RECORD, "Extra": 1}).encode(), "Extra: unknown field"),
        (b"[1, 2]", "record:"),
    ],
)  # fmt: skip
def test_a_record_that_cannot_be_scored_is_a_dead_letter_with_the_reason(
    value: bytes | None, reason: str
) -> None:
    bad = Message(value, offset=5, key=b"k")
    out = score_messages([message(4), bad, message(6)], RuleSet(), AlertRules(), NOW_MS)
    assert [parse_prediction(v).source_offset for _, v, _ in out.predictions] == [4, 6]
    assert len(out.dead_letters) == 1
    key, raw, source = out.dead_letters[0]
    assert (key, source) == (b"k", 1)
    letter = parse_dead_letter(raw)
    assert reason in letter.reason, letter.reason
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "smart_home_stream",
        1,
        5,
    )
    assert letter.key == "k" and letter.rejected_time_ms == NOW_MS
    if value is None:
        assert letter.value is None and letter.value_encoding is None
    elif letter.value_encoding == "base64":
        assert base64.b64decode(letter.value or "") == value
    else:
        assert (letter.value or "").encode() == value  # kept whole, to replay once fixed


def test_a_model_output_that_is_not_finite_is_a_dead_letter() -> None:
    class Overflowing(RuleSet):
        def predict_malfunction(self, rows: list[dict[str, Any]]) -> list[float]:
            return [float("inf") for _ in rows]

    out = score_messages([message(0)], Overflowing(), AlertRules(), NOW_MS)
    assert out.predictions == [] and out.alerts == []
    assert "values too extreme to score" in parse_dead_letter(out.dead_letters[0][1]).reason


def test_a_message_without_a_timestamp_takes_the_scoring_time_as_event_time() -> None:
    undated = Message(json.dumps(RECORD).encode(), timestamp=-1)
    out = score_messages([undated], RuleSet(), AlertRules(), NOW_MS)
    assert parse_prediction(out.predictions[0][1]).event_time_ms == NOW_MS


def test_readers_get_one_line_naming_the_field_of_a_bad_message() -> None:
    with pytest.raises(ContractError, match="prediction message: field user_id: missing"):
        parse_prediction(b'{"source_topic": "t", "source_partition": 0, "source_offset": 0}')


def test_tally_counts_missing_and_twice_scored_inputs() -> None:
    out = score_messages([message(i) for i in range(4)], RuleSet(), AlertRules(), NOW_MS)
    predictions = [parse_prediction(v) for _, v, _ in out.predictions]
    exact = tally({1: 4}, predictions)
    assert exact.exactly_once and exact.line().startswith("inputs 4 | predictions 4")
    wrong = tally({1: 5}, predictions + predictions[:1])
    assert (wrong.duplicates, wrong.missing, wrong.exactly_once) == (1, 1, False)
    assert wrong.by_model_set == {"20260101T000000Z_set0001": 5}


def test_a_live_slot_is_never_shared_and_a_released_one_is_taken_again(tmp_path: Path) -> None:
    first, second = SlotLock("g-host", tmp_path), SlotLock("g-host", tmp_path)
    assert (first.transactional_id, second.transactional_id) == ("g-host-0", "g-host-1")
    first.release()  # as the kernel does for a SIGKILLed process
    again = SlotLock("g-host", tmp_path)
    assert again.transactional_id == "g-host-0"
    again.release()
    second.release()


def test_a_transaction_call_that_never_returns_is_given_up() -> None:
    import threading

    assert within(5, max, 2, 3) == 3
    with pytest.raises(ZeroDivisionError):  # the call's own error reaches the caller
        within(5, divmod, 1, 0)
    never = threading.Event()
    with pytest.raises(TransactionStuck, match="wait did not return within 0.2 s"):
        within(0.2, never.wait)  # as kafka-python's result.wait() after a lost transaction


def test_metrics_show_counts_latency_and_lag() -> None:
    class Scorer:
        stats = ScorerStats(scored=5, alerts=1, rejected=2, transactions=3, aborts=1)

    stats = Scorer.stats
    stats.observe_latency(np.array([0.004, 0.03, 0.03, 0.7, 45.0]))
    stats.partitions[("smart_home_stream", 0)] = (100, 130)
    stats.model_set = "20260101T000000Z_set0001"
    registry = CollectorRegistry()
    registry.register(ScorerCollector(Scorer()))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    for line in (
        "smarthome_scorer_records_scored_total 5.0",
        "smarthome_scorer_alerts_total 1.0",
        "smarthome_scorer_records_rejected_total 2.0",
        "smarthome_scorer_transactions_total 3.0",
        "smarthome_scorer_aborts_total 1.0",
        'smarthome_scorer_end_to_end_latency_seconds_bucket{le="0.01"} 1.0',
        'smarthome_scorer_end_to_end_latency_seconds_bucket{le="0.05"} 3.0',
        'smarthome_scorer_end_to_end_latency_seconds_bucket{le="1"} 4.0',
        'smarthome_scorer_end_to_end_latency_seconds_bucket{le="+Inf"} 5.0',
        "smarthome_scorer_end_to_end_latency_seconds_count 5.0",
        'smarthome_scorer_lag_records{partition="0",topic="smart_home_stream"} 30.0',
        'smarthome_scorer_model_set_info{model_set="20260101T000000Z_set0001"} 1.0',
    ):
        assert line in text, f"{line}\n{text}"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--alert-inefficient-probability", "1.5"], "must be <= 1 (got 1.5)"),
        (["--commit-interval-ms", "0"], "--commit-interval-ms must be >= 1"),
        (["--bootstrap-servers", "127.0.0.1:1", "--broker-wait", "0"],
         "error: no Kafka broker at 127.0.0.1:1"),
    ],
)  # fmt: skip
def test_bad_flags_and_no_broker_are_one_line_without_a_traceback(
    flags: list[str], message: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "kafka_stream_predict.py", "--model-dir", str(tmp_path), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert message in done.stderr, done.stderr
