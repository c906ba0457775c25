"""``GET /pipeline``: lag = end offset - committed offset, batch files, model sets, Kafka down."""

from __future__ import annotations

import fcntl
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from smarthome.api import create_app
from smarthome.contracts import model_sets as registry
from smarthome.devtools.ports import free_port
from smarthome.ingest.batch_writer import BatchWriter
from smarthome.ingest.consumer import BatchConsumer, ConsumerOptions
from smarthome.observe.status import PipelineStatus, StatusSource
from tests.helpers.predictions import prediction, send_in_transaction
from tests.helpers.records import dataset_records, message
from tests.helpers.samples import rename_key, sample_manifest, write_set

ROW = [1, "Camera", 1.5, 2.5, 1, 0, 12, 1]


def fake_set(model_dir: Path, number: int, rows: int) -> Path:
    """A set folder with a whole manifest, no models."""
    now = datetime.now(timezone.utc)
    manifest = sample_manifest(number, rows, created=now, name=registry.set_name(number, now))
    return write_set(model_dir, manifest)


def get_status(source: StatusSource) -> dict[str, Any]:
    app = create_app(source.model_dir, reload_seconds=0, status_source=source)
    answer = app.test_client().get("/pipeline")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    PipelineStatus.model_validate(answer.get_json())  # the documented type, field for field
    return answer.get_json()


def test_kafka_down_is_said_and_the_rest_still_shows(tmp_path: Path) -> None:
    batch_dir, model_dir = tmp_path / "b", tmp_path / "m"
    writer = BatchWriter(batch_dir)
    writer.write_batch("t", 0, 0, 2, [ROW] * 3)
    writer.write_batch("t", 1, 0, 1, [ROW] * 2)
    writer.append_rejected("t", 0, [{"offset": 3, "value": "x", "reason": "record: not JSON"}])
    fake_set(model_dir, 1, 3)
    newest = fake_set(model_dir, 2, 5)
    source = StatusSource(f"127.0.0.1:{free_port()}", "t", "g", batch_dir, model_dir)
    status = get_status(source)
    assert status["kafka"]["reachable"] is False and "no Kafka broker" in status["kafka"]["error"]
    assert status["batches"]["files"] == 2 and status["batches"]["rows"] == 5
    assert status["batches"]["rejected"] == 1
    sets = status["model_sets"]
    assert sets["count"] == 2 and sets["newest"] == newest.name and sets["newest_rows"] == 5
    assert 0 <= sets["newest_age_seconds"] < 60
    assert sets["training"] is False and sets["newest_error"] is None
    rename_key(newest / registry.MANIFEST, "rows", "row_count")
    sets = get_status(source)["model_sets"]
    assert sets["newest_rows"] is None
    assert sets["newest_error"].startswith(f"{newest / registry.MANIFEST}: field rows: missing")
    assert status["scorer"]["reachable"] is False and status["scorer"]["partitions"] == []


def test_training_is_a_set_being_built_not_a_watcher_waiting_nor_a_killed_runs_leftover(
    tmp_path: Path,
) -> None:
    batch_dir, model_dir = tmp_path / "b", tmp_path / "m"
    fake_set(model_dir, 1, 3)
    fake_set(model_dir, 6, 30)
    source = StatusSource(f"127.0.0.1:{free_port()}", "t", "g", batch_dir, model_dir)
    sets = source.model_sets()
    assert (sets.training, sets.trainer_running, sets.training_sets) == (False, False, [])
    with open(model_dir / registry.TRAINING_LOCK, "a+") as lock:  # as spark_training.py does
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sets = source.model_sets()  # a --watch between sets: it holds the lock, builds nothing
        assert (sets.training, sets.trainer_running, sets.training_sets) == (False, True, [])
        building = registry.tmp_dir(model_dir) / registry.set_name(7)
        building.mkdir(parents=True)  # where build_set builds set 7
        (registry.tmp_dir(model_dir) / "retired-x").mkdir()  # not a set folder
        sets = get_status(source)["model_sets"]
        assert sets["training"] is True and sets["trainer_running"] is True
        assert sets["training_sets"] == [building.name] and sets["count"] == 2
    sets = source.model_sets()  # killed: its .tmp/ stays until the next run cleans it
    assert (sets.training, sets.trainer_running, sets.training_sets) == (False, False, [])


def test_lag_is_end_minus_committed_while_stopped_and_zero_after_draining(
    kafka_broker: Any, make_topic: Any, dataset_path: Path, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    bootstrap = kafka_broker.bootstrap_servers
    topic = make_topic(2)
    records = [message(r) for r in dataset_records(dataset_path)[:800]]

    def produce(batch: list[tuple[bytes, bytes]]) -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        for key, value in batch:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()

    def drain() -> None:
        options = ConsumerOptions(bootstrap, topic, tmp_path / "b", group="g", idle_timeout=2)
        BatchConsumer(options).run()

    source = StatusSource(bootstrap, topic, "g", tmp_path / "b", tmp_path / "m")
    produce(records[:500])
    drain()
    produce(records[500:])  # the consumer is stopped: these 300 are lag
    kafka = get_status(source)["kafka"]
    assert kafka["reachable"] is True and kafka["records_in_topic"] == 800
    for part in kafka["partitions"]:
        assert part["lag"] == part["end_offset"] - part["committed"]
    assert kafka["total_lag"] == 300
    drain()
    source = StatusSource(bootstrap, topic, "g", tmp_path / "b", tmp_path / "m")  # no cache
    status = get_status(source)
    assert status["kafka"]["total_lag"] == 0
    assert status["batches"]["rows"] == 800


def test_the_stream_scorers_lag_members_and_predictions_topic_are_shown(
    kafka_broker: Any, make_topic: Any, tmp_path: Path
) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    bootstrap = kafka_broker.bootstrap_servers
    topic, predictions = make_topic(2), make_topic(1)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for n in range(100):
        producer.send(topic, value=b"{}", partition=n % 2)
    producer.flush()
    producer.close()
    group = f"scorer-{topic}"

    def look() -> dict[str, Any]:  # a new source: no cached look
        source = StatusSource(bootstrap, topic, "g", tmp_path / "b", tmp_path / "m",
                              scorer_group=group, predictions_topic=predictions)  # fmt: skip
        return get_status(source)["scorer"]

    scorer = look()  # nothing scored yet: all of it is lag, no prediction
    assert scorer["reachable"] is True and scorer["group"] == group
    assert scorer["total_lag"] == 100 and scorer["members"] == 0
    assert scorer["predictions_end_offsets"] == 0
    member = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                           enable_auto_commit=False)  # fmt: skip
    try:
        while not member.assignment():
            member.poll(timeout_ms=500)
        member.commit({TopicPartition(topic, 0): OffsetAndMetadata(30, "", -1),
                       TopicPartition(topic, 1): OffsetAndMetadata(50, "", -1)})  # fmt: skip
        send_in_transaction(bootstrap, [(predictions, prediction(n, n)) for n in range(80)])
        scorer = look()
        lag = {p["partition"]: (p["committed"], p["lag"]) for p in scorer["partitions"]}
        assert lag == {0: (30, 20), 1: (50, 0)} and scorer["total_lag"] == 20
        assert scorer["members"] == 1
        # 80 predictions and the transaction's commit marker
        assert scorer["predictions_end_offsets"] == 81
    finally:
        member.close()
