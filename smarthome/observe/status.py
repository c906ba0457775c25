"""The status of every stage in one typed answer: Kafka topic and groups, batch files, model
sets, the stream scorer.

``GET /pipeline`` (the API) serves it and the UI's Pipeline tab shows it. Each part says when it was
looked at, and a part that cannot be read (Kafka down) says so while the rest still shows.
Batch files are immutable once published, so their row counts are cached by name and a
look costs one directory listing plus the new files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from smarthome.config import SCORER_GROUP
from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.batch_files import list_batch_files
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.predictions import ALERTS_TOPIC, PREDICTIONS_TOPIC
from smarthome.ingest.batch_writer import REJECTED_DIR
from smarthome.kafka_settings import client_settings, explain, not_connected
from smarthome.observe.background import LatestLook


class PartitionStatus(BaseModel):
    partition: int
    end_offset: int
    committed: int | None  # None: the group has committed nothing for it yet
    lag: int  # end offset - committed (all of it when nothing is committed)


class KafkaStatus(BaseModel):
    reachable: bool
    error: str | None = None
    bootstrap_servers: str
    topic: str
    group: str
    records_in_topic: int | None = None
    total_lag: int | None = None
    partitions: list[PartitionStatus] = []
    checked_at: datetime


class BatchStatus(BaseModel):
    folder: str
    files: int
    rows: int
    rejected: int
    newest: str | None = None
    newest_at: datetime | None = None
    checked_at: datetime


class ModelSetsStatus(BaseModel):
    folder: str
    count: int
    newest: str | None = None
    newest_created_at: datetime | None = None
    newest_age_seconds: float | None = None
    newest_rows: int | None = None
    newest_error: str | None = None  # the newest set's manifest does not match its contract
    #: a set is being built right now: a spark_training.py holds the folder's lock and a set
    #: folder is in ``.tmp/`` (a ``--watch`` waiting for batches holds the lock too)
    training: bool
    #: a spark_training.py process holds the model folder's lock (a run, or a ``--watch``)
    trainer_running: bool = False
    #: the sets being built, by folder name (``.tmp/<name>``), oldest first
    training_sets: list[str] = []
    checked_at: datetime


class ScorerStatus(BaseModel):
    """The stream scorer's group (``kafka_stream_predict.py``) and the predictions topic."""

    reachable: bool
    error: str | None = None
    group: str
    topic: str  # the topic it scores
    #: members of the group right now (scorer processes); None when it cannot be asked
    members: int | None = None
    total_lag: int | None = None
    partitions: list[PartitionStatus] = []
    predictions_topic: str
    #: the predictions topic's end offsets, summed: its size in offsets. Transaction markers
    #: and aborted records take offsets too, so this is at least the number of predictions;
    #: None while the topic does not exist
    predictions_end_offsets: int | None = None
    checked_at: datetime


class PipelineStatus(BaseModel):
    kafka: KafkaStatus
    batches: BatchStatus
    model_sets: ModelSetsStatus
    scorer: ScorerStatus
    checked_at: datetime


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)


@dataclass
class StatusSource:
    """Where the stages keep their state; ``status()`` looks at all of it.

    Kafka is asked at most once a second (every 5 s while it does not answer), in a
    background thread: one look covers the batch consumer's group and the stream scorer's.
    """

    bootstrap_servers: str
    topic: str
    group: str
    batch_dir: Path
    model_dir: Path
    scorer_group: str = SCORER_GROUP
    predictions_topic: str = PREDICTIONS_TOPIC
    #: not looked at here: ``GET /live`` reads it on the same brokers
    alerts_topic: str = ALERTS_TOPIC

    def __post_init__(self) -> None:
        # the status says whether Kafka answers; kafka-python's own connection errors, every
        # few seconds while it is down, would only flood the server's log
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        self._rows: dict[str, int] = {}
        self._kafka = LatestLook(self._look_at_kafka, self._max_age)

    def status(self) -> PipelineStatus:
        view = self._kafka_view()
        return PipelineStatus(
            kafka=view.kafka,
            batches=self.batches(),
            model_sets=self.model_sets(),
            scorer=view.scorer,
            checked_at=_now(),
        )

    def kafka(self) -> KafkaStatus:
        """The newest look at the topic and the batch consumer's group."""
        return self._kafka_view().kafka

    def scorer(self) -> ScorerStatus:
        """The newest look at the stream scorer's group and the predictions topic."""
        return self._kafka_view().scorer

    def _kafka_view(self) -> KafkaView:
        """The newest look at Kafka; an older one starts a new look in the background.

        Only the very first call waits for Kafka (its timeouts when Kafka is down), so a
        request never does after that.
        """
        view = self._kafka.get()
        if view is None:
            return self._unreachable("Kafka did not answer within 15 s")
        return view

    @staticmethod
    def _max_age(view: KafkaView) -> float:
        return 1.0 if view.kafka.reachable else 5.0  # a look at a Kafka that is down takes s

    def _unreachable(self, error: str) -> KafkaView:
        now = _now()
        return KafkaView(
            KafkaStatus(reachable=False, error=error, bootstrap_servers=self.bootstrap_servers,
                        topic=self.topic, group=self.group, checked_at=now),
            ScorerStatus(reachable=False, error=error, group=self.scorer_group, topic=self.topic,
                         predictions_topic=self.predictions_topic, checked_at=now),
        )  # fmt: skip

    def _look_at_kafka(self) -> KafkaView:
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        servers = self.bootstrap_servers.split(",")
        # short timeouts, and the --kafka-config file in force: a secured cluster's login, CA
        options = {"request_timeout_ms": 3000, "bootstrap_timeout_ms": 2000, **client_settings()}
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=servers, allow_auto_create_topics=False, **options
            )
        except Exception as exc:  # kafka-python raises several kinds when nobody answers
            # a refused login (never the password), an untrusted certificate, TLS on one
            # side only, or nobody there
            why = not_connected(exc, self.bootstrap_servers, f"no Kafka broker answers: {exc}")
            return self._unreachable(why)
        try:

            def partitions(topic: str) -> list[TopicPartition]:
                numbers = sorted(consumer.partitions_for_topic(topic) or ())
                return [TopicPartition(topic, p) for p in numbers]

            tps = partitions(self.topic)
            ends = consumer.end_offsets(tps, timeout_ms=3000) if tps else {}
            outputs = partitions(self.predictions_topic)
            output_ends = consumer.end_offsets(outputs, timeout_ms=3000) if outputs else {}
            admin = KafkaAdminClient(bootstrap_servers=servers, **options)
            try:
                committed = _committed(admin, self.group)
                scorer_committed = _committed(admin, self.scorer_group)
                members = _members(admin, self.scorer_group)
            finally:
                admin.close()
        except _Refused as exc:
            return self._unreachable(str(exc))
        except (KafkaError, OSError) as exc:
            return self._unreachable(explain(exc, "read") or f"{type(exc).__name__}: {exc}")
        finally:
            consumer.close()
        now = _now()
        views = _lag(tps, ends, committed)
        scorer_views = _lag(tps, ends, scorer_committed)
        return KafkaView(
            KafkaStatus(
                reachable=True,
                bootstrap_servers=self.bootstrap_servers,
                topic=self.topic,
                group=self.group,
                records_in_topic=sum(v.end_offset for v in views),
                total_lag=sum(v.lag for v in views),
                partitions=views,
                checked_at=now,
            ),
            ScorerStatus(
                reachable=True,
                group=self.scorer_group,
                topic=self.topic,
                members=members,
                total_lag=sum(v.lag for v in scorer_views),
                partitions=scorer_views,
                predictions_topic=self.predictions_topic,
                predictions_end_offsets=sum(output_ends.values()) if outputs else None,
                checked_at=now,
            ),
        )

    def batches(self) -> BatchStatus:
        files = list_batch_files(self.batch_dir)
        rows = 0
        for path in files:
            if path.name not in self._rows:
                with contextlib.suppress(OSError), path.open("rb") as fh:
                    self._rows[path.name] = max(0, sum(1 for _ in fh) - 1)  # minus the header
            rows += self._rows.get(path.name, 0)
        rejected = 0
        for path in sorted((self.batch_dir / REJECTED_DIR).glob("*.jsonl")):
            with contextlib.suppress(OSError), path.open("rb") as fh:
                rejected += sum(1 for _ in fh)
        newest = files[-1] if files else None
        return BatchStatus(
            folder=str(self.batch_dir),
            files=len(files),
            rows=rows,
            rejected=rejected,
            newest=newest.name if newest else None,
            newest_at=_mtime(newest) if newest else None,
            checked_at=_now(),
        )

    def model_sets(self) -> ModelSetsStatus:
        sets = registry.list_sets(self.model_dir) if self.model_dir.is_dir() else []
        newest = sets[-1] if sets else None
        created, rows, error = None, None, None
        if newest is not None:
            try:
                manifest = Manifest.read(newest / registry.MANIFEST)
                created, rows = manifest.created, manifest.rows
            except ContractError as exc:
                error = str(exc)
        age = (_now() - created).total_seconds() if created else None
        running = flock_held(self.model_dir / registry.TRAINING_LOCK)
        # what a killed run left in .tmp/ is no set in progress: only the lock holder builds
        building = sets_in_progress(self.model_dir) if running else []
        return ModelSetsStatus(
            folder=str(self.model_dir),
            count=len(sets),
            newest=newest.name if newest else None,
            newest_created_at=created,
            newest_age_seconds=age,
            newest_rows=rows,
            newest_error=error,
            training=bool(building),
            trainer_running=running,
            training_sets=building,
            checked_at=_now(),
        )


def sets_in_progress(model_dir: Path) -> list[str]:
    """The set folders in ``<model_dir>/.tmp/``, oldest name first.

    A run builds each set in ``.tmp/<set name>`` and renames it into place once complete
    (``smarthome.training.build``); a ``--retrain-all`` keeps the built ones there until all
    are published.
    """
    tmp = registry.tmp_dir(model_dir)
    try:
        return sorted(
            p.name for p in tmp.iterdir() if p.is_dir() and registry.SET_NAME.match(p.name)
        )
    except OSError:  # no .tmp/ (nothing in progress), or it vanished while listed
        return []


def flock_held(path: Path) -> bool:
    """Whether some process holds a ``flock`` on ``path``, asked without taking it.

    Reads /proc/locks (Linux) instead of trying the lock: a try would, for a moment, make a
    training run that starts then fail with "another spark_training.py is training".
    """
    try:
        st = os.stat(path)
        locks = Path("/proc/locks").read_text()
    except OSError:
        return False
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(
        len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where
        for fields in (line.split() for line in locks.splitlines())
    )


class _Refused(Exception):
    """A look the cluster refused (a missing ACL), worded by ``explain``."""


@dataclass(frozen=True)
class KafkaView:
    """One look at Kafka: the batch consumer's side and the stream scorer's."""

    kafka: KafkaStatus
    scorer: ScorerStatus


def _committed(admin: Any, group: str) -> dict:
    """The group's committed offsets by partition ({} when it has committed nothing yet)."""
    from kafka.errors import KafkaError

    try:
        return admin.list_group_offsets(group).get(group, {})
    except KafkaError as exc:  # e.g. no such group yet: nothing committed
        refusal = explain(exc, "describe", group)
        if refusal is not None:  # no DESCRIBE on the group: the status says who may not
            raise _Refused(refusal) from None
        return {}


def _members(admin: Any, group: str) -> int | None:
    """How many members the group has right now; None if the broker does not say."""
    from kafka.errors import KafkaError

    try:
        described = admin.describe_groups([group]).get(group) or {}
    except KafkaError as exc:
        refusal = explain(exc, "describe", group)
        if refusal is not None:  # refused: the status says who may not
            raise _Refused(refusal) from None
        return None
    members = described.get("members")
    return len(members) if isinstance(members, list) else None


def _lag(tps: list, ends: dict, committed: dict) -> list[PartitionStatus]:
    views = []
    for tp in tps:
        meta = committed.get(tp)
        offset = meta.offset if meta is not None and meta.offset >= 0 else None
        end = ends.get(tp, 0)
        views.append(PartitionStatus(partition=tp.partition, end_offset=end, committed=offset,
                                     lag=max(0, end - (offset or 0))))  # fmt: skip
    return views
