"""The stream scorer as a user runs it: a real broker, a trained set, the script in a process.

Outputs are read back as a read_committed consumer reads them and checked per input record
(source partition and offset): one prediction or dead letter each, none missing, none twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.predictions import parse_alert, parse_dead_letter, parse_prediction
from smarthome.devtools.stream_outputs import end_offsets, read_committed_values, tally
from smarthome.stream.alerts import AlertRules
from tests.conftest import ROOT


class Outputs:
    """A test's own output topics and the scorer command that writes them."""

    def __init__(self, bootstrap: str, topic: str, model_dir: Path) -> None:
        self.bootstrap, self.topic, self.model_dir = bootstrap, topic, model_dir
        self.predictions = f"{topic}-predictions"
        self.alerts = f"{topic}-alerts"
        self.dead_letters = f"{topic}-rejected"
        self.group = f"{topic}-scorer"

    def command(self, *flags: str) -> list[str]:
        return [
            sys.executable, "kafka_stream_predict.py",
            "--bootstrap-servers", self.bootstrap,
            "--topic", self.topic,
            "--predictions-topic", self.predictions,
            "--alerts-topic", self.alerts,
            "--dead-letter-topic", self.dead_letters,
            "--group", self.group,
            "--model-dir", str(self.model_dir),
            *flags,
        ]  # fmt: skip

    def start(self, log: Path, *flags: str) -> subprocess.Popen[bytes]:
        """The scorer as a child process, its output in ``log``."""
        with log.open("wb") as sink:
            return subprocess.Popen(
                self.command(*flags), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
            )

    def read(self, topic: str) -> list[bytes]:
        return read_committed_values(self.bootstrap, topic)

    def committed_offsets(self) -> dict[int, int]:
        """The scorer group's committed offset per input partition (none: not there)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )
        try:  # asks the group coordinator; never joins the group
            committed = {
                n: consumer.committed(TopicPartition(self.topic, n))
                for n in consumer.partitions_for_topic(self.topic)
            }
        finally:
            consumer.close(autocommit=False)
        return {n: offset for n, offset in committed.items() if offset is not None}


@pytest.fixture
def model_dir(tmp_path: Path, trained_model_dir: Path) -> Path:
    """A model dir of its own holding a copy of the trained set."""
    folder = tmp_path / "models"
    folder.mkdir()
    trained = registry.list_sets(trained_model_dir)[-1]
    shutil.copytree(trained, folder / trained.name)
    return folder


def publish_copy(model_dir: Path) -> str:
    """Publish the newest set again under a newer name, as training publishes a set: whole
    in ``.tmp/`` first, then renamed into place."""
    newest = registry.list_sets(model_dir)[-1]
    name = registry.set_name(registry.set_number(newest) + 1)
    assert name > newest.name
    staging = registry.tmp_dir(model_dir) / name
    shutil.copytree(newest, staging)
    os.rename(staging, model_dir / name)
    return name


def produce(bootstrap: str, topic: str, *flags: str) -> None:
    done = subprocess.run(
        [sys.executable, "kafka_producer.py", "--bootstrap-servers", bootstrap,
         "--topic", topic, "--no-progress", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def produce_raw(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for value in values:
            producer.send(topic, key=b"bad", value=value).get(timeout=30)
    finally:
        producer.close()


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120):
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_every_record_is_scored_once_and_malformed_ones_are_dead_letters(
    kafka_broker, make_topic, model_dir: Path
) -> None:
    topic = make_topic(3)
    out = Outputs(kafka_broker.bootstrap_servers, topic, model_dir)
    produce(out.bootstrap, topic, "--limit", "600")
    malformed = [
        b"{not json",
        json.dumps({"UserID": 1, "DeviceType": "Toaster"}).encode(),
        None,
        b"\xff\xfe",
    ]
    produce_raw(out.bootstrap, topic, malformed)
    done = subprocess.run(
        out.command("--idle-timeout", "3"), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert "scored 600 records" in summary and "4 dead letters" in summary, summary

    predictions = [parse_prediction(v) for v in out.read(out.predictions)]
    letters = [parse_dead_letter(v) for v in out.read(out.dead_letters)]
    ends = end_offsets(out.bootstrap, topic)
    counted = tally(ends, predictions, letters)
    assert counted.exactly_once and counted.inputs == 604, counted.line()
    assert (counted.predictions, counted.dead_letters) == (600, 4)
    assert sorted(p.user_id for p in predictions) == list(range(1, 601))
    assert {p.model_set for p in predictions} == {registry.list_sets(model_dir)[-1].name}
    assert all(p.event_time_ms <= p.scored_time_ms for p in predictions)
    reasons = sorted(d.reason.split(" (")[0].split(":")[0] for d in letters)
    assert reasons == ["DeviceType", "record", "record", "record"], [d.reason for d in letters]
    assert {d.value for d in letters} >= {"{not json", None}
    # an alert for each prediction over the default thresholds, and no other
    rules = AlertRules()
    alerts = [parse_alert(v) for v in out.read(out.alerts)]
    expected = [
        p
        for p in predictions
        if rules.reasons(
            p.predicted_efficiency_class, p.probability_of_predicted_class, p.predicted_malfunctions
        )
    ]
    assert expected, "the dataset's first rows cross the default threshold"
    assert sorted(a.prediction.source_offset + 10**6 * a.prediction.source_partition
                  for a in alerts) == sorted(
        p.source_offset + 10**6 * p.source_partition for p in expected
    )  # fmt: skip
    assert all(a.reasons for a in alerts)
    # the inputs' offsets were committed with the outputs
    assert out.committed_offsets() == ends


def test_without_a_model_set_nothing_is_consumed_until_one_is_published(
    kafka_broker, make_topic, tmp_path: Path, model_dir: Path
) -> None:
    empty = tmp_path / "empty-models"
    empty.mkdir()
    topic = make_topic(2)
    out = Outputs(kafka_broker.bootstrap_servers, topic, empty)
    produce(out.bootstrap, topic, "--limit", "300")
    log = tmp_path / "scorer.log"
    proc = out.start(log, "--idle-timeout", "5", "--reload-seconds", "0.5")
    try:
        wait_for_line(log, "waiting for a model set", proc)
        time.sleep(3)  # room to consume wrongly, were it going to
        assert proc.poll() is None, log.read_text()
        assert out.read(out.predictions) == []
        assert out.committed_offsets() == {}
        lines = [line for line in log.read_text().splitlines() if "model set" in line]
        assert len(lines) == 1, lines  # said once
        trained = registry.list_sets(model_dir)[-1]
        shutil.copytree(trained, registry.tmp_dir(empty) / trained.name)
        os.rename(registry.tmp_dir(empty) / trained.name, empty / trained.name)
        assert proc.wait(timeout=180) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    predictions = [parse_prediction(v) for v in out.read(out.predictions)]
    counted = tally(end_offsets(out.bootstrap, topic), predictions)
    assert counted.exactly_once and counted.predictions == 300, counted.line()
    assert counted.by_model_set == {trained.name: 300}


def test_a_set_published_mid_stream_scores_everything_after_the_swap_and_nothing_twice(
    kafka_broker, make_topic, tmp_path: Path, model_dir: Path
) -> None:
    topic = make_topic(3)
    out = Outputs(kafka_broker.bootstrap_servers, topic, model_dir)
    old = registry.list_sets(model_dir)[-1].name
    log = tmp_path / "scorer.log"
    proc = out.start(log, "--idle-timeout", "20", "--reload-seconds", "0.3")
    producer = subprocess.Popen(
        [sys.executable, "kafka_producer.py", "--bootstrap-servers", out.bootstrap,
         "--topic", topic, "--synthetic", "4000", "--rate", "200", "--no-progress"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_line(log, f"with model set {old}", proc)
        deadline = time.monotonic() + 120
        while not out.read(out.predictions):  # the old set is scoring
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        new = publish_copy(model_dir)
        wait_for_line(log, f"model set {new} loaded", proc)
        assert producer.wait(timeout=180) == 0
        assert proc.wait(timeout=180) == 0, log.read_text()
    finally:
        for p in (producer, proc):
            if p.poll() is None:
                p.kill()
    predictions = [parse_prediction(v) for v in out.read(out.predictions)]
    counted = tally(end_offsets(out.bootstrap, topic), predictions)
    assert counted.exactly_once and counted.predictions == 4000, counted.line()
    assert set(counted.by_model_set) == {old, new}, counted.by_model_set
    for partition in range(3):  # in each partition, the old set's records, then the new one's
        names = [
            p.model_set
            for p in sorted(predictions, key=lambda p: p.source_offset)
            if p.source_partition == partition
        ]
        swap = names.index(new) if new in names else len(names)
        assert names == [old] * swap + [new] * (len(names) - swap), partition
    # nothing the new set scored was made before it was loaded
    loaded_at = min(p.scored_time_ms for p in predictions if p.model_set == new)
    assert all(p.scored_time_ms <= loaded_at for p in predictions if p.model_set == old)


def test_a_committed_offset_read_after_a_call_given_up_is_the_current_one(
    kafka_broker, make_topic
) -> None:
    """A read that timed out leaves its answer behind in kafka-python; the next read must not
    return that old answer (a scorer would seek back and score records twice)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaTimeoutError
    from kafka.structs import OffsetAndMetadata

    from smarthome.stream.kafka_clients import CommittedOffsets

    topic = make_topic(1)
    tp, group = TopicPartition(topic, 0), f"committed-{topic}"
    bootstrap = kafka_broker.bootstrap_servers
    writer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        isolation_level="read_committed",
    )  # fmt: skip
    try:
        writer.commit({tp: OffsetAndMetadata(10, "", -1)})
        offsets = CommittedOffsets(reader, timeout_ms=5_000)
        assert offsets.read(tp) == 10
        offsets.timeout_ms = 0
        with pytest.raises(KafkaTimeoutError):
            offsets.read(tp)  # given up; its answer (10) arrives after
        time.sleep(1)
        writer.commit({tp: OffsetAndMetadata(99, "", -1)})
        offsets.timeout_ms = 5_000
        assert offsets.read(tp) == 99
        assert offsets.read(tp) == 99
    finally:
        writer.close(autocommit=False)
        reader.close(autocommit=False)


class _Member:
    """The group membership a scorer's consumer reports, set by the test; the group
    coordinator that judges it is the real broker's."""

    def __init__(self) -> None:
        from kafka import ConsumerGroupMetadata

        self.metadata = ConsumerGroupMetadata()

    def group_metadata(self):  # noqa: ANN201 - kafka-python's namedtuple
        return self.metadata

    def assignment(self) -> set:
        return set()

    def pause(self, *partitions) -> None:  # noqa: ANN002
        pass


def test_offsets_the_group_refused_are_never_committed_by_a_later_transaction(
    kafka_broker, make_topic, tmp_path: Path
) -> None:
    """A paused scorer, fenced out of the group, has its transaction's offsets refused; its
    next transaction, in the new generation, must not commit those old offsets too (they
    would move the partition's new owner back, and it would score records twice)."""
    from types import SimpleNamespace

    from kafka import ConsumerGroupMetadata, TopicPartition

    from smarthome.stream import kafka_clients
    from smarthome.stream.scorer import ScorerOptions, StreamScorer

    topic = make_topic(2)
    bootstrap = kafka_broker.bootstrap_servers
    group = f"{topic}-scorer"
    scorer = StreamScorer(
        ScorerOptions(bootstrap_servers=bootstrap, topic=topic, group=group, model_dir=tmp_path),
        log=lambda _line: None,
    )
    member = _Member()
    scorer.consumer = member
    scorer.transactional_id = f"{topic}-refused"
    scorer.producer = kafka_clients.transactional_producer(bootstrap, scorer.transactional_id)
    try:
        # a member id the group never had: the coordinator refuses the offsets
        member.metadata = ConsumerGroupMetadata(group, 7, "a-member-fenced-out", None)
        scorer.begin((7, "a-member-fenced-out"))
        scorer.model_set = SimpleNamespace(name="set")
        scorer.next_offsets = {TopicPartition(topic, 0): 50}
        scorer.commit()
        assert (scorer.stats.transactions, scorer.stats.aborts) == (0, 1)

        member.metadata = ConsumerGroupMetadata(group, -1, "", None)
        scorer.begin((-1, ""))
        scorer.model_set = SimpleNamespace(name="set")
        scorer.next_offsets = {TopicPartition(topic, 1): 10}
        scorer.commit()
        assert scorer.stats.transactions == 1
    finally:
        scorer.producer.close(timeout=5)
    outputs = Outputs(bootstrap, topic, tmp_path)
    assert outputs.committed_offsets() == {1: 10}
