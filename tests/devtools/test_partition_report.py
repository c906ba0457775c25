"""How ``make partitions`` names a missing record: the faults in force when it was sent."""

from __future__ import annotations

from smarthome.devtools.chaos import FIRST_SYNTHETIC_ID
from smarthome.devtools.partitions import FAULTS, PartitionPlan, Window, faults_in_force


def test_a_missing_record_is_named_with_the_faults_in_force_when_it_was_sent() -> None:
    windows = [
        Window(10.0, "one-way", "kafka-2 receives from every host, sends to none", end=22.0),
        Window(20.0, "slow-link", "kafka-1 link 200 ms each way", end=80.0),
        Window(90.0, "leader-from-everyone", "kafka-3 cut off from every host"),  # not healed
    ]
    at = lambda seconds: FIRST_SYNTHETIC_ID + int(seconds * 100)  # noqa: E731 (100 records/s)
    assert faults_in_force(windows, 100, at(5)) == (
        "sent at about 5 s, no fault in force"
        " (next: kafka-2 receives from every host, sends to none, at 10 s)"
    )
    assert faults_in_force(windows, 100, at(21)) == (
        "sent at about 21 s, during: kafka-2 receives from every host, sends to none;"
        " kafka-1 link 200 ms each way"
    )
    assert faults_in_force(windows, 100, at(85)) == (
        "sent at about 85 s, no fault in force (next: kafka-3 cut off from every host, at 90 s)"
    )
    assert faults_in_force(windows, 100, at(500)).endswith(
        "during: kafka-3 cut off from every host"
    )


def test_the_stream_outlasts_every_fault_of_the_plan() -> None:
    plan = PartitionPlan()
    faults = sum(plan.seconds(kind) for kind in FAULTS)
    assert plan.seconds("slow-link") == 60 and plan.seconds("client-cut-off") == 18
    assert plan.stream_seconds() > faults + len(FAULTS) * plan.gap_seconds
