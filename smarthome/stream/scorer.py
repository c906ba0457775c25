"""The stream scorer: consume, score, produce, in one Kafka transaction (DESIGN §15).

The loop, as in any consume-transform-produce program with Kafka transactions::

    producer.init_transactions()
    while running:
        records = consumer.poll()                   # read_committed, no auto-commit
        producer.begin_transaction()                # on the first records of a transaction
        producer.send(predictions / alerts / dead letters)
        ...every --commit-interval-ms:
        producer.send_offsets_to_transaction(next offsets, consumer.group_metadata())
        producer.commit_transaction()               # outputs and offsets, all or nothing

A transaction's outputs and the input offsets they cover are committed together, so a
read_committed reader sees exactly one prediction (or dead letter) per input record, through
a crash at any moment: what was not committed is aborted and read again.

A member paused past its session timeout cannot commit after its partitions moved (KIP-447):
its offsets go to the group coordinator with the group generation it consumed them in, and
the coordinator refuses a stale generation, so that transaction aborts; the new owner reads
the partition's committed offset with ``require_stable`` (kafka-python does for a
read_committed consumer), which waits for a transaction still pending on it. The loop also
aborts a transaction during which the group rebalanced, and after any abort it seeks every
partition back to its committed offset.

kafka-python rebalances on its own network thread, so a rebalance can land while a poll is
being drained. Only records of partitions this loop has itself seeked to their committed
offset, in the generation the transaction began in, are scored: a partition (re)assigned
while a poll ran is read again from its committed offset, never from where the client
happened to be, and a poll that straddles a rebalance is thrown away and its partitions
seeked back.

The model set is read from the holder when a transaction begins and used for all of it: a
newer set (swapped in by the holder's thread) takes over at the next transaction, so every
prediction names the set that made it and none is made twice.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from smarthome.config import SCORER_GROUP
from smarthome.contracts.predictions import ALERTS_TOPIC, DEAD_LETTER_TOPIC, PREDICTIONS_TOPIC
from smarthome.errors import UserError
from smarthome.ingest.producer import key_partitioner
from smarthome.scoring.holder import ModelHolder
from smarthome.stream import kafka_clients
from smarthome.stream.alerts import AlertRules
from smarthome.stream.kafka_clients import TransactionStuck, within
from smarthome.stream.outputs import score_messages

#: a transaction's outputs become readable when it commits: every record waits up to this
#: long for it, and each commit costs a few round trips to the coordinators (DESIGN §15)
DEFAULT_COMMIT_INTERVAL_MS = 50
CALL_TIMEOUT = kafka_clients.TRANSACTION_CALL_TIMEOUT
#: end-to-end latency buckets (seconds): produce time -> committed prediction
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class ScorerOptions:
    bootstrap_servers: str
    topic: str = "smart_home_stream"
    predictions_topic: str = PREDICTIONS_TOPIC
    alerts_topic: str = ALERTS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    group: str = SCORER_GROUP
    model_dir: Path = Path("spark_models")
    #: None: ``<group>-<host>-<slot>`` (``kafka_clients``)
    transactional_id: str | None = None
    commit_interval_ms: int = DEFAULT_COMMIT_INTERVAL_MS
    rules: AlertRules = field(default_factory=AlertRules)
    idle_timeout: float = 30.0
    follow: bool = False
    #: stop once at least this many records are committed (0: no limit)
    max_records: int = 0
    session_timeout_ms: int = 10_000
    #: seconds to wait for a broker at start (None: forever)
    broker_wait: float | None = 60.0
    reload_seconds: float = 2.0
    max_poll_records: int = 2000


@dataclass
class ScorerStats:
    """What the scorer has committed so far; metrics and the summary line read it."""

    consumed: int = 0
    scored: int = 0
    alerts: int = 0
    rejected: int = 0
    transactions: int = 0
    aborts: int = 0
    #: end-to-end latency histogram of committed records: counts per LATENCY_BUCKETS (+Inf)
    latency_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64)
    )
    latency_sum: float = 0.0
    model_set: str | None = None
    waiting_for_model: bool = False
    #: (topic, partition) -> (committed offset, high watermark or None) of owned partitions
    partitions: dict[tuple[str, int], tuple[int, int | None]] = field(default_factory=dict)
    stopped_by: str = ""

    def observe_latency(self, seconds: np.ndarray) -> None:
        self.latency_counts += np.bincount(
            np.searchsorted(LATENCY_BUCKETS, seconds, side="left"),
            minlength=len(LATENCY_BUCKETS) + 1,
        )
        self.latency_sum += float(seconds.sum())

    def line(self, topic: str) -> str:
        return (
            f"scored {self.scored} records from {topic} in {self.transactions} transactions"
            f" ({self.alerts} alerts, {self.rejected} dead letters, {self.aborts} aborted)"
        )


class _Listener(ConsumerRebalanceListener):
    """Pauses every assigned partition until the loop has positioned it at its committed
    offset. Runs on kafka-python's network thread: it asks the broker nothing."""

    def __init__(self, scorer: StreamScorer) -> None:
        self.scorer = scorer

    def on_partitions_revoked(self, revoked: Any) -> None:
        scorer = self.scorer
        with scorer.positions_lock:
            for tp in revoked:
                scorer.to_position.discard(tp)
                scorer.positioned.discard(tp)
                scorer.stats.partitions.pop((tp.topic, tp.partition), None)

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)

    def on_partitions_assigned(self, assigned: Any) -> None:
        scorer = self.scorer
        with scorer.positions_lock:
            scorer.positioned.difference_update(assigned)
            scorer.to_position.update(assigned)
            if assigned:
                scorer.consumer.pause(*assigned)
        scorer.idle_seconds = 0.0


class StreamScorer:
    """One scorer process of the group; ``run()`` until idle, ``max_records`` or a stop."""

    def __init__(self, options: ScorerOptions, log: Any = None) -> None:
        self.options = options
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stats = ScorerStats()
        self.stop_reason = ""
        self.idle_seconds = 0.0
        self.holder = ModelHolder(options.model_dir)
        #: assigned partitions, paused until seeked to their committed offset
        self.to_position: set[TopicPartition] = set()
        #: partitions this loop seeked to their committed offset since they were assigned:
        #: the only ones whose records are scored
        self.positioned: set[TopicPartition] = set()
        #: the rebalance listener (network thread) and the loop change the two sets above
        self.positions_lock = threading.Lock()
        self.consumer: Any = None
        self.committed: kafka_clients.CommittedOffsets | None = None
        self.producer: Any = None
        #: (topic, (key, source partition) -> partition) of the three output topics
        self.partitioners: list[tuple[str, Any]] = []
        self.transactional_id = ""
        self._slot: kafka_clients.SlotLock | None = None
        self._fenced_in_a_row = 0
        # the open transaction
        self.in_transaction = False
        self.model_set: Any = None
        self.generation: tuple[int, str] | None = None
        self.began_at = 0.0
        self.next_offsets: dict[TopicPartition, int] = {}
        self.counts = [0, 0, 0, 0]  # consumed, scored, alerts, rejected
        self.event_times_ms: list[int] = []
        self._next_idle_probe = 0.0
        self._idle_state = "idle"
        self._last_turn = time.monotonic()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> ScorerStats:
        """Score until a stop; every transaction is committed or aborted before returning."""
        try:
            self.start()
            if self.wait_for_model_set():
                self.consumer.subscribe([self.options.topic], listener=self.rebalance_listener())
                self.loop()
        finally:
            self.close()
        self.stats.stopped_by = self.stop_reason
        return self.stats

    def loop(self) -> None:
        self._last_turn = time.monotonic()
        while not self.stop_reason:
            self.loop_once()
        if self.in_transaction:
            self.commit()

    def loop_once(self) -> None:
        """Position, poll, score, and commit when the transaction is due."""
        opts = self.options
        if self.in_transaction and self.group_generation() != self.generation:
            self.abort("the group rebalanced during the transaction")
        self.position_assigned()
        generation = self.group_generation()
        records = self.poll()
        if self.group_generation() != generation:
            # the poll straddled a rebalance: its records may predate it
            if self.in_transaction:
                self.abort("the group rebalanced during the transaction")
            elif records:
                self.reposition_all()
            records = []
        now = time.monotonic()
        if records:
            try:
                if not self.in_transaction:
                    self.begin(generation)
                self.process(records)
            except KafkaError as exc:  # a send refused: the transaction cannot commit
                self.abort(describe(exc))
            self.idle_seconds = 0.0
        if self.in_transaction and (now - self.began_at) * 1000 >= opts.commit_interval_ms:
            self.commit()
        if not records and not self.in_transaction:
            self.count_idle(now - self._last_turn, now)
        self._last_turn = now
        if opts.max_records and self.stats.consumed >= opts.max_records:
            self.stop_reason = f"{opts.max_records} records scored (--max-records)"
        elif not opts.follow and self.idle_seconds >= opts.idle_timeout:
            self.stop_reason = f"no new record for {opts.idle_timeout:g} s"

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        return _Listener(self)

    def group_generation(self) -> tuple[int, str]:
        metadata = self.consumer.group_metadata()
        return (metadata.generation_id, metadata.member_id)

    def begin(self, generation: tuple[int, str]) -> None:
        """Open a transaction for records polled in ``generation``; the set it scores with is
        fixed now."""
        self.producer.begin_transaction()
        self.in_transaction = True
        self.began_at = time.monotonic()
        self.model_set = self.holder.current  # a newer set waits for the next transaction
        self.generation = generation

    def process(self, records: list[Any]) -> None:
        """Score one poll's records and send what they give, inside the open transaction."""
        now_ms = int(time.time() * 1000)
        out = score_messages(records, self.model_set, self.options.rules, now_ms)
        send = self.producer.send
        for (topic, partition_of), messages in zip(
            self.partitioners, (out.predictions, out.alerts, out.dead_letters), strict=True
        ):
            for key, value, source in messages:
                send(topic, key=key, value=value, partition=partition_of(key, source))
        for record in records:  # in offset order within a partition: the last one wins
            self.next_offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        counts = self.counts
        counts[0] += len(records)
        counts[1] += len(out.predictions)
        counts[2] += len(out.alerts)
        counts[3] += len(out.dead_letters)
        self.event_times_ms.extend(out.event_times_ms)

    def commit(self) -> None:
        """Commit the outputs and the offsets they cover together, or abort both."""
        metadata = self.consumer.group_metadata()
        if (metadata.generation_id, metadata.member_id) != self.generation:
            self.abort("the group rebalanced during the transaction")
            return
        offsets = {tp: OffsetAndMetadata(n, "", -1) for tp, n in self.next_offsets.items()}
        try:
            within(CALL_TIMEOUT, self.producer.send_offsets_to_transaction, offsets, metadata)
        except (KafkaError, TransactionStuck) as exc:
            # kafka-python keeps offsets the group refused (a member fenced out by a
            # rebalance) and sends them again with the next transaction's, moving the
            # partition's new owner back: only a new producer forgets them
            self.abort(describe(exc), replace=exc)
            return
        try:
            within(CALL_TIMEOUT, self.producer.commit_transaction)
        except (KafkaError, TransactionStuck) as exc:
            self.abort(describe(exc), replace=exc if isinstance(exc, TransactionStuck) else None)
            return
        done_ms = time.time() * 1000
        self._fenced_in_a_row = 0
        stats = self.stats
        stats.transactions += 1
        stats.model_set = self.model_set.name
        consumed, scored, alerts, rejected = self.counts
        stats.consumed += consumed
        stats.scored += scored
        stats.alerts += alerts
        stats.rejected += rejected
        stats.observe_latency((done_ms - np.asarray(self.event_times_ms, dtype=np.float64)) / 1000)
        for tp, offset in self.next_offsets.items():
            key = (tp.topic, tp.partition)
            if key in stats.partitions:  # still ours
                stats.partitions[key] = (offset, self.consumer.highwater(tp))
        self._reset_transaction()

    def abort(self, reason: str, replace: Exception | None = None) -> None:
        """Abort the open transaction and go back to every partition's committed offset.

        A producer that cannot abort, or that must be ``replace``d (its last call is stuck,
        or it holds refused offsets), is replaced: the new one's ``init_transactions``
        aborts the transaction (or waits for a commit already under way to finish, which
        the committed offsets then show). ``replace`` is why it must be.
        """
        self.log(f"transaction aborted, its records will be read again: {reason}")
        self.stats.aborts += 1
        if replace is not None:
            self.replace_producer(replace)
        else:
            try:
                within(CALL_TIMEOUT, self.producer.abort_transaction)
            except (KafkaError, TransactionStuck) as exc:  # fenced or broken: a new producer
                self.replace_producer(exc)
        self._reset_transaction()
        self.reposition_all()

    def reposition_all(self) -> None:
        """Pause every assigned partition until it is seeked back to its committed offset."""
        with self.positions_lock:
            assigned = self.consumer.assignment()
            self.positioned.clear()
            self.to_position.update(assigned)
            if assigned:
                self.consumer.pause(*assigned)

    def _reset_transaction(self) -> None:
        self.in_transaction = False
        self.next_offsets = {}
        self.counts = [0, 0, 0, 0]
        self.event_times_ms = []
        self.model_set = None

    # -- partitions ---------------------------------------------------------------------

    def position_assigned(self) -> None:
        """Seek each partition waiting in ``to_position`` to its committed offset, resume it.

        ``committed`` waits while a transaction that sent offsets for the partition is still
        open (require_stable): a previous owner's commit either lands first or is aborted.
        A partition whose assignment changed meanwhile (the generation moved) stays waiting:
        the offset read may be from before its last owner's commits.
        """
        with self.positions_lock:
            waiting = list(self.to_position)
        for tp in waiting:
            generation = self.group_generation()
            if tp not in self.consumer.assignment():
                with self.positions_lock:
                    self.to_position.discard(tp)
                continue
            try:
                committed = self.committed.read(tp)
            except KafkaError:
                continue  # coordinator busy or away, or a transaction still pending: retry
            with self.positions_lock:
                if tp not in self.to_position or self.group_generation() != generation:
                    continue
                if committed is None:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)
                self.stats.partitions[(tp.topic, tp.partition)] = (committed or 0, None)
                self.to_position.discard(tp)
                self.positioned.add(tp)
                self.consumer.resume(tp)

    def poll(self) -> list[Any]:
        """One poll's records of positioned partitions; a broker away is waited for."""
        wait_ms = 500
        if self.in_transaction:
            left = self.options.commit_interval_ms - (time.monotonic() - self.began_at) * 1000
            wait_ms = max(0, int(left))
        try:
            polled = self.consumer.poll(timeout_ms=wait_ms)
        except KafkaError as exc:
            if not exc.retriable:
                message = f"Kafka error, stopping (nothing uncommitted is lost): {exc}"
                raise UserError(message) from None
            self.log(f"warning: broker unreachable, retrying: {exc}")
            time.sleep(0.5)
            return []
        records = []
        with self.positions_lock:
            for tp, batch in polled.items():
                if tp in self.positioned:
                    records.extend(batch)
        return records

    def count_idle(self, elapsed: float, now: float) -> None:
        """Add ``elapsed`` to the idle clock if the broker answers and has nothing unread.

        Asked at most once a second; an unreachable broker, or a partition not read to its
        end yet, keeps the clock still.
        """
        if now < self._next_idle_probe:
            self.idle_seconds += elapsed if self._idle_state == "idle" else 0.0
            return
        self._next_idle_probe = now + 1.0
        self._idle_state = self._probe_idle()
        if self._idle_state == "idle":
            self.idle_seconds += elapsed
        elif self._idle_state == "behind":
            self.idle_seconds = 0.0

    def _probe_idle(self) -> str:
        if self.to_position:
            return "behind"
        assigned = list(self.consumer.assignment())
        if not assigned:
            return "idle"
        try:
            ends = self.consumer.end_offsets(assigned, timeout_ms=3000)
            behind = any(end > self.consumer.position(tp) for tp, end in ends.items())
        except KafkaError:
            return "away"
        return "behind" if behind else "idle"

    # -- set-up and tear-down -----------------------------------------------------------

    def start(self) -> None:
        """Connect, check the input topic, create missing outputs, start transactions."""
        opts = self.options
        self.consumer = kafka_clients.connect_consumer(
            opts.bootstrap_servers,
            opts.group,
            opts.session_timeout_ms,
            opts.broker_wait,
            opts.max_poll_records,
        )
        self.committed = kafka_clients.CommittedOffsets(self.consumer, timeout_ms=5_000)
        partitions = kafka_clients.input_partitions(self.consumer, opts.topic, wait=opts.follow)
        outputs = [opts.predictions_topic, opts.alerts_topic, opts.dead_letter_topic]
        created = kafka_clients.ensure_output_topics(opts.bootstrap_servers, outputs, partitions)
        if created:
            self.log(f"created topic(s) {', '.join(created)} with {partitions} partition(s)")
        if opts.transactional_id:
            self.transactional_id = opts.transactional_id
        else:
            prefix = kafka_clients.default_transactional_id_prefix(opts.group)
            self._slot = kafka_clients.SlotLock(prefix)
            self.transactional_id = self._slot.transactional_id
        self.producer = kafka_clients.transactional_producer(
            opts.bootstrap_servers, self.transactional_id
        )
        self.partitioners = [(t, output_partitioner(self.producer, t, partitions)) for t in outputs]

    def wait_for_model_set(self) -> bool:
        """Load the newest set; with none yet, say so once and wait, consuming nothing.

        Then the holder's thread keeps looking for newer sets. False if stopped first.
        """
        self.holder.check()
        if self.holder.current is None:
            self.stats.waiting_for_model = True
            self.log(
                f"waiting for a model set in {self.options.model_dir}/ (train one with"
                " spark-submit spark_training.py); nothing is consumed until then"
            )
            while self.holder.current is None and not self.stop_reason:
                time.sleep(1)
                self.holder.check()
            self.stats.waiting_for_model = False
        if self.holder.current is None:
            return False
        self.stats.model_set = self.holder.current.name
        self.log(
            f"scoring {self.options.topic} with model set {self.holder.current.name}"
            f" as {self.transactional_id}"
        )
        self.holder.on_loaded = lambda served: self.log(
            f"model set {served.name} loaded; it scores from the next transaction on"
        )
        self.holder.start(self.options.reload_seconds)
        return True

    def replace_producer(self, cause: Exception) -> None:
        """Start a new producer with the same id in place of one fenced, broken or unfit.

        Its ``init_transactions`` aborts whatever the old one left open. Fenced twice in a
        row means another live process uses this transactional id: stop, saying so.
        """
        fenced = isinstance(cause, ProducerFencedError)
        self._fenced_in_a_row = self._fenced_in_a_row + 1 if fenced else 0
        if self._fenced_in_a_row > 1:
            raise UserError(
                f"transactional id {self.transactional_id} is in use by another process"
                f" ({type(cause).__name__}); give each scorer its own --transactional-id"
            )
        self.log(f"starting a new producer ({type(cause).__name__})")
        _close_quietly(self.producer)
        self.producer = kafka_clients.transactional_producer(
            self.options.bootstrap_servers, self.transactional_id, patient=True
        )

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def close(self) -> None:
        self.holder.stop()
        if self.in_transaction:  # an error left it open: abort, so nothing waits on it
            with contextlib.suppress(KafkaError, TransactionStuck):
                within(5, self.producer.abort_transaction)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        _close_quietly(self.producer)
        if self._slot is not None:
            self._slot.release()


def describe(exc: Exception) -> str:
    """``Name: message`` of an exception, the name once (Kafka's errors repeat it)."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}"


def output_partitioner(producer: Any, topic: str, input_partitions: int) -> Any:
    """Where a message for ``topic`` goes: a device's messages always on one partition.

    With as many partitions as the input, that is the input record's partition: the same
    partition Kafka's keyed partitioner gives the same key (murmur2 modulo the count), so a
    device's predictions sit with its records, without hashing every key again. Otherwise
    the keyed partitioner, memoised; a dead letter without a key goes where the client puts it.
    """
    by_key = key_partitioner(producer, topic)
    if len(producer.partitions_for(topic)) == input_partitions:
        return lambda _key, source: source
    return lambda key, _source: by_key(key) if key is not None else None


def _close_quietly(producer: Any) -> None:
    if producer is None:
        return
    with contextlib.suppress(KafkaError):
        producer.close(timeout=5)
