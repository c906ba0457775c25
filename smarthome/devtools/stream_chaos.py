"""The stream scorer's exactly-once promise under faults: ``make chaos``'s machinery, scorers.

Scorer processes (``kafka_stream_predict.py``) in one group score a synthetic stream on a
private broker or cluster while the same seeded faults as the batch consumers' run
(``chaos``): scorers SIGKILLed (restarted a second later) or paused with SIGSTOP past their
session timeout, the busiest leader SIGKILLed. At the end the committed outputs are read as a
read_committed consumer reads them and counted per input (``stream_outputs``):

    delivered 20000 | inputs 20000 | predictions 19990 | dead letters 10 | duplicates 0 | missing 0
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smarthome.devtools.chaos import SESSION_TIMEOUT, Chaos, ChaosConfig, ConsumerSlot
from smarthome.devtools.stream_outputs import Tally, committed_outputs
from smarthome.devtools.workspace import CHECKOUT


class ScorerSlot(ConsumerSlot):
    """One scorer of the group: a process, restarted after a kill, one log for all lives."""

    def __init__(self, index: int, args: list[str], log: Path) -> None:
        self.index, self.args, self.log = index, args, log
        self.proc = None
        self.lives = 0


@dataclass
class ScorerChaosResult:
    delivered: int
    producer_exit: int
    tally: Tally
    faults_done: list[str]
    producer_output: str = ""

    @property
    def exactly_once(self) -> bool:
        return self.tally.exactly_once and self.tally.inputs == self.delivered

    def line(self) -> str:
        return f"delivered {self.delivered} | {self.tally.line()}"


class ScorerChaos(Chaos):
    """One chaos run with ``config.consumers`` scorers serving a copy of ``model_set``."""

    def __init__(self, config: ChaosConfig, model_set: Path, log: Any = print) -> None:
        super().__init__(config, log)
        self.model_dir = self.work / "spark_models"
        self.model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(model_set, self.model_dir / Path(model_set).name)
        self.predictions_topic = f"{self.topic}-predictions"
        self.alerts_topic = f"{self.topic}-alerts"
        self.dead_letter_topic = f"{self.topic}-rejected"

    def scorer_args(self) -> list[str]:
        return [
            sys.executable,
            str(CHECKOUT / "kafka_stream_predict.py"),
            "--bootstrap-servers", self.cluster.bootstrap_servers,
            "--topic", self.topic,
            "--predictions-topic", self.predictions_topic,
            "--alerts-topic", self.alerts_topic,
            "--dead-letter-topic", self.dead_letter_topic,
            "--group", f"chaos-scorer-{self.topic}",
            "--model-dir", str(self.model_dir),
            # longer than a pause plus the rebalance after it: the idle clock runs while stopped
            "--idle-timeout", "20",
            "--session-timeout", f"{SESSION_TIMEOUT:g}",
            "--broker-wait", "120",
        ]  # fmt: skip

    def run(self) -> ScorerChaosResult:  # type: ignore[override]
        cfg = self.config
        self.cluster.start()
        self.log(f"Kafka: {cfg.brokers} node(s) at {self.cluster.bootstrap_servers}")
        slots: list[ScorerSlot] = []
        try:
            self._create_topic()
            logs = self.work / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            slots = [
                ScorerSlot(i, self.scorer_args(), logs / f"scorer{i}.log")
                for i in range(cfg.consumers)
            ]
            for slot in slots:
                slot.start()
            producer = self._start_producer(logs / "producer.log")
            self._inject(slots, producer)  # type: ignore[arg-type]
            producer_exit = producer.wait()
            output = (logs / "producer.log").read_text(errors="replace")
            self._wait_recovered()
            self.log("stream done; waiting for the scorers to drain and stop when idle")
            for slot in slots:
                if slot.proc is not None:
                    slot.proc.wait(timeout=300)
            last = [line for line in output.splitlines() if line.startswith("delivered ")]
            delivered = int(last[-1].split()[1].rstrip(",")) if last else 0
            counted = committed_outputs(
                self.cluster.bootstrap_servers,
                self.topic,
                self.predictions_topic,
                self.dead_letter_topic,
            )
            return ScorerChaosResult(delivered, producer_exit, counted, self.done, output)
        finally:
            for slot in slots:
                slot.kill()
            self.cluster.stop()
            self._restarter.shutdown(wait=True)

    def scorer_logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted((self.work / "logs").glob("scorer*.log")))
