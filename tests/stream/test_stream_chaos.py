"""Exactly one prediction per delivered record under faults: scorer kills and pauses, broker kills.

Two scorer processes in one group score a synthetic stream on a private broker while the
faults of ``make chaos`` hit them; a read_committed reader then counts the committed
predictions and dead letters per input (source partition and offset). On a 3-node cluster
with its leaders killed, the scorers run beside the batch consumers in one chaos run
(``tests/devtools/test_chaos.py``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.devtools.chaos import Chaos, ChaosConfig, Fault
from tests.conftest import require

pytestmark = [pytest.mark.kafka]


@pytest.fixture(autouse=True)
def _java() -> None:
    require(shutil.which("java") is not None, "Java 17 (java on PATH) for local Kafka")


@pytest.fixture
def served_set(trained_model_dir: Path) -> Path:
    return registry.list_sets(trained_model_dir)[-1]


def test_three_scorer_kills_and_two_pauses_past_the_session_timeout_over_sasl_ssl_score_once(
    tmp_path: Path, served_set: Path
) -> None:
    # on a secured broker: the producer and each scorer log in as their own principal and do
    # their work with no more than the shipped ACLs grant (transactions, offsets in the
    # transaction, fencing after a kill), the counts are read as admin
    # a pause blocks the schedule for its 9 s: the next fault comes after it
    faults = [
        Fault(10, "kill-consumer", 0),
        Fault(20, "pause-consumer", 1),
        Fault(33, "kill-consumer", 1),
        Fault(43, "pause-consumer", 0),
        Fault(58, "kill-consumer", 0),
    ]
    config = ChaosConfig(
        records=20_000, rate=250, brokers=1, partitions=3, faults=faults, work_dir=tmp_path,
        consumers=0, scorers=2, model_set=served_set, secure=True,
    )  # fmt: skip
    chaos = Chaos(config, log=lambda _: None)
    result = chaos.run()
    assert "KAFKA_CONFIG" not in os.environ  # the run's admin login was for the run only
    for slot in chaos.scorer_slots:  # each scorer logged in as scorer, not as admin
        assert slot.args[-2:] == ["--kafka-config", str(chaos.cluster.client_properties("scorer"))]
    done, logs, tally = result.faults_done, chaos.scorer_logs(), result.scoring
    assert sum("SIGKILL scorer" in d for d in done) == 3, done
    assert sum("SIGSTOP scorer" in d for d in done) == 2, done
    assert result.producer_exit == 0 and result.delivered == 20_000, result.producer_output
    assert tally is not None, result.scoring_line()
    assert tally.duplicates == 0, f"{result.scoring_line()}\n{done}\n{logs}"
    assert tally.missing == 0, f"{result.scoring_line()}\n{done}\n{logs}"
    assert tally.inputs == 20_000 and tally.predictions == 20_000, result.scoring_line()
    assert tally.dead_letters == 0
    # the faults did what they are for: transactions open at a kill, a pause or the
    # rebalance after one were aborted and their records scored again, once
    assert "transaction aborted" in logs, logs
