"""The scorer's loop through rebalances that land in the middle of a poll.

kafka-python rebalances on its own network thread, so the loop can be handed records fetched
before a rebalance that moved their partition, or records of a partition the client
positioned by itself before the listener ran. A small in-memory group stands in for the
broker here (one partition, transactional offsets, generation fencing as KIP-447 does it)
so each interleaving happens on cue; the real stage meets real rebalances in
test_stream_chaos.py.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from kafka import TopicPartition
from kafka.errors import CommitFailedError

from smarthome.stream.kafka_clients import CommittedOffsets
from smarthome.stream.scorer import ScorerOptions, StreamScorer
from tests.helpers.scorer_inputs import RECORD, Message, RuleSet

TP = TopicPartition("smart_home_stream", 0)
RECORDS = 60
PER_POLL = 10


class Metadata:
    def __init__(self, generation: int, member: str) -> None:
        self.generation_id, self.member_id = generation, member


class Group:
    """One partition's log, its committed offset, and the member's consumer and producer."""

    def __init__(self) -> None:
        self.log = [
            Message(json.dumps({**RECORD, "UserID": n}).encode(), offset=n, partition=0)
            for n in range(RECORDS)
        ]
        self.generation = 1
        self.committed: int | None = None
        self.outputs: list[int] = []  # offsets of the inputs of committed predictions
        #: poll number -> what happens on the network thread while that poll is drained
        self.during_poll: dict[int, Any] = {}
        #: poll number -> what happens on the network thread right after that poll returned
        self.after_poll: dict[int, Any] = {}


class Consumer:
    def __init__(self, group: Group) -> None:
        self.group, self.listener = group, None
        self.position = 0
        self.paused: set[TopicPartition] = set()
        self.polls = 0

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def group_metadata(self) -> Metadata:
        event = self.group.after_poll.pop(self.polls, None)
        if event is not None:
            event(self)
        return Metadata(self.group.generation, "member-1")

    def committed(self, tp: TopicPartition, timeout_ms: int = 0) -> int | None:
        return self.group.committed

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.position = 0

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def highwater(self, tp: TopicPartition) -> int:
        return RECORDS

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int = 0) -> dict:
        return {tp: RECORDS for tp in tps}

    def poll(self, timeout_ms: int = 0) -> dict:
        self.polls += 1
        start = self.position
        fetched = [] if TP in self.paused else self.group.log[start : start + PER_POLL]
        self.position += len(fetched)
        event = self.group.during_poll.pop(self.polls, None)
        if event is not None:
            event(self)  # after the fetch, before the records reach the loop
        return {TP: fetched} if fetched else {}

    def rebalance_back_to_us(self) -> None:
        """Eager rebalance keeping the partition: revoke, new generation, assign; the client
        resets the position to the committed offset on its own."""
        self.listener.on_partitions_revoked({TP})
        self.group.generation += 1
        self.position = self.group.committed or 0
        self.listener.on_partitions_assigned({TP})


class Producer:
    def __init__(self, group: Group, consumer: Consumer) -> None:
        self.group, self.consumer = group, consumer
        self.pending: list[int] = []
        self.offsets: int | None = None

    def begin_transaction(self) -> None:
        self.pending, self.offsets = [], None

    def send(self, topic: str, key: Any, value: bytes, partition: Any) -> None:
        if topic == "smart_home_stream-predictions":
            self.pending.append(json.loads(value)["source_offset"])

    def send_offsets_to_transaction(self, offsets: dict, metadata: Metadata) -> None:
        if metadata.generation_id != self.group.generation:  # KIP-447 fencing
            raise CommitFailedError("stale generation")
        self.offsets = offsets[TP].offset

    def commit_transaction(self) -> None:
        self.group.outputs.extend(self.pending)
        self.group.committed = self.offsets

    def abort_transaction(self) -> None:
        self.pending, self.offsets = [], None


def run_scorer(group: Group) -> list[str]:
    log: list[str] = []
    options = ScorerOptions(
        bootstrap_servers="unused", predictions_topic="smart_home_stream-predictions",
        max_records=RECORDS, commit_interval_ms=3_600_000,
    )  # fmt: skip
    scorer = StreamScorer(options, log=log.append)
    scorer.consumer = consumer = Consumer(group)
    scorer.committed = CommittedOffsets(consumer, timeout_ms=5_000)
    scorer.producer = Producer(group, consumer)
    outputs = (options.predictions_topic, options.alerts_topic, options.dead_letter_topic)
    scorer.partitioners = [(topic, lambda _key, source: source) for topic in outputs]
    scorer.holder.current = RuleSet()
    consumer.listener = listener = scorer.rebalance_listener()
    listener.on_partitions_assigned({TP})
    for turn in range(200):
        if scorer.stats.consumed >= RECORDS:
            break
        scorer.loop_once()
        if turn % 3 == 2 and scorer.in_transaction:  # a transaction spans three polls
            scorer.commit()
    return log


def scored_once(group: Group, log: list[str]) -> None:
    counts = Counter(group.outputs)
    assert sorted(counts) == list(range(RECORDS)), "a record was never scored"
    assert [n for n, c in counts.items() if c > 1] == [], f"scored twice; {log}"
    assert group.committed == RECORDS


def test_a_rebalance_while_a_poll_is_drained_scores_no_record_twice() -> None:
    group = Group()
    group.during_poll = {2: Consumer.rebalance_back_to_us, 5: Consumer.rebalance_back_to_us}
    scored_once(group, run_scorer(group))


def test_a_rebalance_just_after_a_poll_mid_transaction_scores_no_record_twice() -> None:
    group = Group()
    group.after_poll = {2: Consumer.rebalance_back_to_us, 4: Consumer.rebalance_back_to_us}
    scored_once(group, run_scorer(group))


def test_without_rebalances_every_record_is_scored_once() -> None:
    group = Group()
    run_scorer(group)
    assert Counter(group.outputs) == Counter(range(RECORDS))
