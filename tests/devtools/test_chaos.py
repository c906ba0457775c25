"""Exactly once under faults on one broker: pauses, kills, an outage before the first record.

Counts compare the batch files with what the producer reported delivered and with what
the topic holds, by UserID: every record once, none missing, none twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smarthome.devtools.chaos import (
    FIRST_SYNTHETIC_ID,
    Chaos,
    ChaosConfig,
    Fault,
    file_user_ids,
)
from tests.conftest import ROOT, require

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _java() -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for local Kafka")


def test_each_consumer_paused_past_its_session_timeout_twice_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    faults = [
        Fault(at, "pause-consumer", target) for at, target in ((4, 0), (8, 1), (12, 0), (16, 1))
    ]
    config = ChaosConfig(
        records=8000, rate=160, brokers=1, partitions=3, faults=faults, work_dir=tmp_path
    )
    chaos = Chaos(config, log=lambda _: None)
    result = chaos.run()
    logs = chaos.consumer_logs()
    assert len([d for d in result.faults_done if "SIGSTOP" in d]) == 4, result.faults_done
    assert result.producer_exit == 0 and result.delivered == 8000, result.producer_output
    assert result.in_topic == 8000
    assert result.duplicates == 0, f"{result.line()}\n{logs}"
    assert result.missing == 0 and result.in_files == 8000, f"{result.line()}\n{logs}"
    # the faults did what they are for: a member found its partition still locked by the
    # paused one (without the lock, that member would have written the same records)
    assert "still holds the partition's lock" in logs, logs
    ids = sorted(file_user_ids(chaos.batch_dir))
    assert ids == list(range(FIRST_SYNTHETIC_ID, FIRST_SYNTHETIC_ID + 8000))


def test_scorers_beside_the_consumers_take_the_same_kill_and_pause_and_score_each_record_once(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    from smarthome.contracts import model_sets as registry

    faults = [Fault(5, "kill-consumer", 0), Fault(10, "pause-consumer", 1)]
    config = ChaosConfig(
        records=5000, rate=250, brokers=1, partitions=3, faults=faults, work_dir=tmp_path,
        scorers=2, model_set=registry.newest_set(trained_model_dir),
    )  # fmt: skip
    chaos = Chaos(config, log=lambda _: None)
    result = chaos.run()
    done = result.faults_done
    assert any("SIGKILL scorer 0, restarted" in d for d in done), done
    assert any("SIGSTOP scorer 1" in d for d in done), done
    assert result.producer_exit == 0 and result.delivered == 5000, result.producer_output
    assert result.scoring is not None, result.line()
    scorer_logs = chaos.scorer_logs()
    assert result.scoring.duplicates == 0, f"{result.scoring_line()}\n{done}\n{scorer_logs}"
    assert result.scoring.missing == 0, f"{result.scoring_line()}\n{done}\n{scorer_logs}"
    assert result.scoring.inputs == result.scoring.predictions == 5000, result.scoring_line()
    assert result.exactly_once, f"{result.line()}\n{chaos.consumer_logs()}"


def test_consumer_waits_for_a_broker_and_an_outage_does_not_use_up_idle_timeout(
    tmp_path: Path,
) -> None:
    from smarthome.devtools.local_kafka import LocalKafka
    from smarthome.devtools.ports import free_port

    broker = LocalKafka(
        tmp_path / "kafka", port=free_port(), controller_port=free_port(), die_with_parent=True
    )
    batch_dir = tmp_path / "batches"
    log = tmp_path / "consumer.log"
    with log.open("wb") as out:
        consumer = subprocess.Popen(
            [sys.executable, "kafka_consumer_batch.py", "--bootstrap-servers",
             broker.bootstrap_servers, "--topic", "late", "--batch-dir", str(batch_dir),
             "--idle-timeout", "15", "--max-batch-age", "1", "--broker-wait", "180",
             "--no-progress"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def produce(limit: int) -> None:
        done = subprocess.run(
            [sys.executable, "kafka_producer.py", "--bootstrap-servers",
             broker.bootstrap_servers, "--topic", "late", "--limit", str(limit),
             "--no-progress"],
            cwd=ROOT, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def wait_for_rows(count: int) -> None:
        deadline = time.monotonic() + 120
        while len(file_user_ids(batch_dir)) < count:
            assert consumer.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)

    try:
        time.sleep(5)  # no broker yet: the consumer waits instead of exiting
        assert consumer.poll() is None, log.read_text()
        assert "waiting for a Kafka broker" in log.read_text()
        broker.start()
        produce(300)
        wait_for_rows(300)
        broker.stop()
        time.sleep(30)  # twice --idle-timeout with the broker down
        assert consumer.poll() is None, f"exited during the outage:\n{log.read_text()}"
        broker.start()
        produce(600)  # the dataset's first 600 rows: 300 of them again, as new messages
        wait_for_rows(900)
        assert consumer.wait(timeout=120) == 0, log.read_text()  # then idle: it stops
    finally:
        if consumer.poll() is None:
            consumer.kill()
        broker.stop()
    text = log.read_text()
    assert "broker unreachable" in text and "no new record for 15 s" in text, text
    assert len(file_user_ids(batch_dir)) == 900  # each message once
