"""The exactly-once batch consumer: Kafka topic -> batch CSV files (DESIGN §4-5).

Per partition, records are buffered and published as one batch file (``BatchWriter``); only
after the file is renamed into place and the folder fsynced is ``endOffset + 1`` committed.
The files themselves are the source of truth for where to resume: on every assignment the
consumer reads the resume point of each partition from the file names (and the rejected file)
and never writes an offset at or below it again, so

* a crash before the rename loses nothing (the offset was not committed, it is read again),
* a crash between the rename and the commit duplicates nothing (the name says it is done).

A member only writes a partition while it holds that partition's file lock
(``partition_lock``): a member paused past its session timeout, whose partition has moved on,
can never publish a file the new owner has written too.

Broker outages are waited out: a consumer started with no broker waits up to
``broker_wait`` seconds for one, and ``idle_timeout`` counts only time in which the broker
answered and had nothing new.

Invalid messages go to ``rejected/<topic>+<partition>.jsonl`` just before the batch that
covers their offsets is renamed; a rejected entry at or below the last one in that file is
never appended twice (a crash in between re-reads them, and they are skipped).

Test hooks (crash tests only): ``SMARTHOME_TEST_CRASH_BEFORE_RENAME=N`` /
``SMARTHOME_TEST_CRASH_AFTER_RENAME=N`` make the process ``os._exit(86)`` right before/after
the N-th batch rename, without committing or cleaning up, like a SIGKILL at that moment.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from smarthome.config import CONSUMER_GROUP
from smarthome.contracts.records import RecordError, parse_record_message
from smarthome.errors import UserError
from smarthome.ingest.batch_writer import (
    BatchWriter,
    batch_resume_offset,
    crash_hooks_from_env,
    rejected_entry,
    rejected_resume_offset,
)
from smarthome.ingest.partition_lock import PartitionLocks
from smarthome.kafka_settings import client_settings, diagnose, refused

#: kafka-python settings: big fetches and many records per poll for throughput, and a short
#: reconnect backoff so a restarted broker is found again within seconds (default up to 30 s)
CLIENT_CONFIG: dict[str, Any] = {
    "max_poll_records": 5000,
    "reconnect_backoff_max_ms": 2000,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "receive_buffer_bytes": 4 * 1024 * 1024,
}


@dataclass
class ConsumerOptions:
    bootstrap_servers: str
    topic: str
    batch_dir: Path
    group: str = CONSUMER_GROUP
    batch_size: int = 1000
    max_batch_age: float = 10.0
    idle_timeout: float = 30.0
    follow: bool = False
    progress: bool = False
    instance_id: str | None = None
    session_timeout_ms: int = 10_000
    #: seconds to wait for a broker at start (None: forever)
    broker_wait: float | None = 60.0


@dataclass
class Summary:
    consumed: int = 0
    records: int = 0
    files: int = 0
    rejected: int = 0
    skipped: int = 0
    commit_failures: int = 0
    fenced: int = 0
    stopped_by: str = ""
    #: monotonic clock of the first record received and of the last batch published
    first_record_at: float = 0.0
    last_write_at: float = 0.0

    def line(self, topic: str, batch_dir: Path) -> str:
        text = (
            f"consumed {self.consumed} messages from {topic}: wrote {self.records} records "
            f"in {self.files} batch files to {batch_dir}, rejected {self.rejected}"
        )
        if self.skipped:
            text += f", skipped {self.skipped} already on disk"
        if self.commit_failures:
            text += f", {self.commit_failures} offset commits failed (files are the resume point)"
        if self.fenced:
            text += f", dropped {self.fenced} unwritten records of partitions another member took"
        return text


@dataclass
class PartitionBuffer:
    """Unwritten records of one partition, and the offsets below which all is on disk."""

    next_offset: int
    rejected_floor: int
    start: int | None = None
    end: int = -1
    opened_at: float = 0.0
    rows: list[list[Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        self.start, self.rows, self.rejected = None, [], []


def parse_row(raw: bytes | None) -> list[Any]:
    """A validated message value as a batch-file row, or RecordError with its reason."""
    return list(parse_record_message(raw).values())  # already in RECORD_COLUMNS order


class _Listener(ConsumerRebalanceListener):
    """Gives up revoked (or lost) partitions, queues assigned ones for ``_position_partitions``.

    Never commits nor asks the broker anything (a sync listener runs on kafka-python's IO
    loop, where a commit raises); an assigned partition stays paused until the main loop
    holds its lock and has positioned it after what is on disk.
    """

    def __init__(self, owner: BatchConsumer):
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.owner.close_partition(tp)

    def on_partitions_lost(self, lost: Any) -> None:  # evicted: the buffer is someone else's
        self.on_partitions_revoked(lost)

    def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self.owner.pending_seek.add(tp)
        if assigned:
            self.owner.consumer.pause(*assigned)
        self.owner.idle_seconds = 0.0  # a rebalance restarts the idle clock


class BatchConsumer:
    """One consumer process: poll, validate, buffer per partition, publish, commit."""

    def __init__(self, options: ConsumerOptions, consumer: KafkaConsumer | None = None):
        self.options = options
        self.writer = BatchWriter(options.batch_dir, crash_hooks_from_env())
        self.summary = Summary()
        #: partitions this process holds the lock of and has positioned after the disk
        self.buffers: dict[TopicPartition, PartitionBuffer] = {}
        #: assigned partitions waiting for their lock or their first seek (paused)
        self.pending_seek: set[TopicPartition] = set()
        self.to_commit: dict[TopicPartition, OffsetAndMetadata] = {}
        self.locks = PartitionLocks(options.batch_dir)
        #: makes a revocation wait for a batch being published (listener vs. main loop)
        self.guard = threading.Lock()
        self.waiting_for_lock: set[TopicPartition] = set()
        #: (topic, partition) -> (committed offset, high watermark or None), for metrics
        self.partition_stats: dict[tuple[str, int], tuple[int, int | None]] = {}
        self.stop_reason = ""
        self.broker_away = False
        self.idle_seconds = 0.0
        self.reachability = Reachability()
        self.consumer = consumer or connect(options)
        self.consumer.subscribe([options.topic], listener=_Listener(self))

    def open_partition(self, tp: TopicPartition) -> bool:
        """Take the partition's lock and read where to start from disk; False while fenced.

        The disk is read only once the lock is held, so it includes every file the
        partition's previous owner published.
        """
        if not self.locks.acquire(tp.topic, tp.partition):
            if tp not in self.waiting_for_lock:
                self.waiting_for_lock.add(tp)
                holder = self.locks.holder(tp.topic, tp.partition)
                print(
                    f"waiting for {tp.topic}+{tp.partition}: its previous owner (pid {holder})"
                    " still holds the partition's lock; it resumes once that process lets go",
                    file=sys.stderr,
                )
            return False
        self.waiting_for_lock.discard(tp)
        batch_dir = self.options.batch_dir
        self.buffers[tp] = PartitionBuffer(
            next_offset=batch_resume_offset(batch_dir, tp.topic, tp.partition),
            rejected_floor=rejected_resume_offset(batch_dir, tp.topic, tp.partition),
        )
        return True

    def close_partition(self, tp: TopicPartition) -> None:
        """Drop the unwritten buffer (it will be read again) and let go of the lock."""
        with self.guard:
            buf = self.buffers.pop(tp, None)
            if buf is not None and buf.start is not None:
                self.summary.fenced += len(buf.rows) + len(buf.rejected)
            self.pending_seek.discard(tp)
            self.waiting_for_lock.discard(tp)
            self.to_commit.pop(tp, None)
            self.partition_stats.pop((tp.topic, tp.partition), None)
            self.locks.release(tp.topic, tp.partition)

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def run(self) -> Summary:
        """Consume until idle for ``idle_timeout`` (unless ``follow``) or a stop request."""
        opts = self.options
        bar = _progress(opts.progress)
        poll_ms = int(1000 * max(0.05, min(1.0, opts.max_batch_age, opts.idle_timeout)))
        last_tick = time.monotonic()
        try:
            while not self.stop_reason:
                polled = self._poll(poll_ms)
                now = time.monotonic()
                count = 0
                for tp, records in polled.items():
                    count += self._take(tp, records, now)
                if count:
                    self.idle_seconds = 0.0
                    self.summary.first_record_at = self.summary.first_record_at or now
                    self.summary.consumed += count
                    if bar is not None:
                        bar.update(count)
                self._position_partitions()
                self._flush_aged(now)
                self.commit_published()
                self._note_high_watermarks()
                if not count:
                    self._count_idle(now - last_tick, now)
                last_tick = now
                if not opts.follow and self.idle_seconds >= opts.idle_timeout:
                    self.stop_reason = f"no new record for {opts.idle_timeout:g} s"
            self.flush_all()
        finally:
            if bar is not None:
                bar.close()
            self.consumer.close(autocommit=False)
            self.locks.release_all()
        self.summary.stopped_by = self.stop_reason
        return self.summary

    def _note_high_watermarks(self) -> None:
        """Each owned partition's high watermark, as the last fetch saw it (no request)."""
        for tp in self.buffers:
            key = (tp.topic, tp.partition)
            if key in self.partition_stats:
                self.partition_stats[key] = (
                    self.partition_stats[key][0],
                    self.consumer.highwater(tp),
                )

    def _count_idle(self, elapsed: float, now: float) -> None:
        """Add ``elapsed`` to the idle clock only if the broker answered and had nothing new.

        Asked at most once a second (``Reachability``): a broker that is down, or data the
        consumer has not read yet (a partition waiting for its lock, a leader moving), keeps
        the clock still, so an outage never counts toward ``--idle-timeout``.
        """
        state = self.reachability.check(self, now)
        if state == "away" and not self.broker_away:
            print("warning: broker unreachable, waiting (idle clock stopped)", file=sys.stderr)
            self.broker_away = True
        elif state != "away" and self.broker_away:
            print("broker reachable again", file=sys.stderr)
            self.broker_away = False
        if state == "idle":
            self.idle_seconds += elapsed
        elif state == "behind":
            self.idle_seconds = 0.0

    def _poll(self, poll_ms: int) -> dict[TopicPartition, list[Any]]:
        """One poll; a broker that is away (restart, network) is waited for, not fatal."""
        try:
            return self.consumer.poll(timeout_ms=poll_ms)
        except KafkaError as exc:
            refusal = refused(exc, "read", self.options.group)
            if refusal is not None:  # a missing ACL: nothing uncommitted was published
                raise refusal from None
            if not exc.retriable:
                raise UserError(f"Kafka error, stopping without committing more: {exc}") from None
            if not self.broker_away:
                print(f"warning: broker unreachable, retrying: {exc}", file=sys.stderr)
            self.broker_away = True
            time.sleep(poll_ms / 1000)
            return {}

    def _take(self, tp: TopicPartition, records: list[Any], now: float) -> int:
        """Buffer the records of a partition this process owns; how many it took."""
        buf = self.buffers.get(tp)
        if buf is None:  # not ours (yet): its position is set again before it is read
            if tp not in self.pending_seek and tp in self.consumer.assignment():
                self.pending_seek.add(tp)
                self.consumer.pause(tp)
            return 0
        batch_size = self.options.batch_size
        for record in records:
            offset = record.offset
            if offset < buf.next_offset:
                self.summary.skipped += 1
                continue
            if buf.start is None:
                buf.start, buf.opened_at = offset, now
            buf.end = offset
            buf.next_offset = offset + 1
            try:
                buf.rows.append(parse_row(record.value))
            except RecordError as exc:
                if offset >= buf.rejected_floor:
                    buf.rejected.append(rejected_entry(offset, record.value, str(exc)))
                continue
            if len(buf.rows) >= batch_size:
                self.flush(tp, buf)
        return len(records)

    def _position_partitions(self) -> None:
        """Start each newly assigned partition at max(committed offset, disk resume point).

        Only once this process holds the partition's lock (``open_partition``), so the disk's
        resume point includes everything a previous owner published.

        Always an explicit seek: kafka-python keeps the fetch position of a partition that is
        revoked and assigned again, but its unwritten buffer was dropped, so the position must
        go back to what is durable (the committed offset or the files, whichever is ahead).
        """
        for tp in list(self.pending_seek):
            if tp not in self.consumer.assignment():
                self.pending_seek.discard(tp)
                continue
            buf = self.buffers.get(tp)
            if buf is None and not self.open_partition(tp):
                continue  # fenced: another process still holds the lock; stays paused
            buf = self.buffers[tp]
            try:
                committed = self.consumer.committed(tp, timeout_ms=10_000)
            except KafkaError as exc:
                refusal = refused(exc, "read", self.options.group)
                if refusal is not None:  # asking again would be refused again
                    raise refusal from None
                continue  # coordinator busy or away: try again after the next poll
            start = max(buf.next_offset, committed or 0)
            buf.next_offset = start
            self.partition_stats[(tp.topic, tp.partition)] = (start, None)
            if start > 0:
                self.consumer.seek(tp, start)
            else:
                self.consumer.seek_to_beginning(tp)
            self.pending_seek.discard(tp)
            self.consumer.resume(tp)

    def _flush_aged(self, now: float) -> None:
        max_age = self.options.max_batch_age
        for tp, buf in list(self.buffers.items()):
            if buf.start is not None and now - buf.opened_at >= max_age:
                self.flush(tp, buf)

    def flush_all(self) -> None:
        for tp, buf in list(self.buffers.items()):
            self.flush(tp, buf)
        self.commit_published()

    def flush(self, tp: TopicPartition, buf: PartitionBuffer) -> None:
        """Make the buffer durable (rejected lines, then the batch file); commit comes later.

        The offset is queued for ``commit_published``, which the loop calls before its next
        poll: batches published in one poll cycle share one directory fsync and one commit
        request (each file is still fsynced and renamed before any commit that covers it).

        Publishes only while this process holds the partition's lock; ``guard`` keeps a
        revocation from letting go of it half-way.
        """
        with self.guard:
            if buf.start is None or self.buffers.get(tp) is not buf:
                return
            if not self.locks.holds(tp.topic, tp.partition):  # never expected: say so loudly
                print(f"warning: {tp.topic}+{tp.partition} lock lost; not writing", file=sys.stderr)
                self.buffers.pop(tp, None)
                self.summary.fenced += len(buf.rows) + len(buf.rejected)
                return
            self._publish(tp, buf)

    def _publish(self, tp: TopicPartition, buf: PartitionBuffer) -> None:
        if buf.rejected:
            self.summary.rejected += self.writer.append_rejected(
                tp.topic, tp.partition, buf.rejected
            )
            buf.rejected_floor = buf.rejected[-1]["offset"] + 1
        if buf.rows:
            self.writer.write_batch(
                tp.topic, tp.partition, buf.start, buf.end, buf.rows, sync_dir=False
            )
            self.summary.files += 1
            self.summary.records += len(buf.rows)
            self.summary.last_write_at = time.monotonic()
        buf.clear()
        self.to_commit[tp] = OffsetAndMetadata(buf.next_offset, "", -1)

    def commit_published(self) -> None:
        """fsync the folder (the renames are now durable), then commit their offsets at once."""
        if not self.to_commit:
            return
        self.writer.sync_dir()
        offsets, self.to_commit = self.to_commit, {}
        try:
            self.consumer.commit(offsets, timeout_ms=30_000)
            for tp, meta in offsets.items():
                key = (tp.topic, tp.partition)
                if key in self.partition_stats:  # still ours
                    self.partition_stats[key] = (meta.offset, self.partition_stats[key][1])
        except KafkaError as exc:  # the files are on disk; their names are the resume point
            self.summary.commit_failures += 1
            where = ", ".join(f"{tp.topic}+{tp.partition}@{o.offset}" for tp, o in offsets.items())
            print(f"warning: commit of {where} failed: {exc}", file=sys.stderr)
        self.summary.last_write_at = time.monotonic()


class Reachability:
    """Whether the broker answers and has records this consumer has not read, asked ≤ 1/s.

    ``check`` says "idle" (answers, nothing new), "behind" (records not read yet, e.g. a
    partition still waiting for its lock or a leader that just moved) or "away".
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.next_at = 0.0
        self.state = "idle"

    def check(self, owner: BatchConsumer, now: float) -> str:
        if now >= self.next_at:
            self.state = self._probe(owner)
            self.next_at = time.monotonic() + self.interval
        return self.state

    @staticmethod
    def _probe(owner: BatchConsumer) -> str:
        consumer = owner.consumer
        assigned = list(consumer.assignment())
        if not assigned:  # nothing of ours to ask about: do the topic's leaders answer?
            topics = consumer.subscription() or set()
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in consumer.partitions_for_topic(topic) or ()
            ]
            if partitions:
                try:
                    consumer.end_offsets(partitions, timeout_ms=3000)
                except KafkaError as exc:
                    return _away(exc)
            return "away" if owner.broker_away else "idle"
        try:
            ends = consumer.end_offsets(assigned, timeout_ms=3000)
        except KafkaError as exc:
            return _away(exc)
        if owner.pending_seek:
            return "behind"
        for tp, end in ends.items():
            buf = owner.buffers.get(tp)
            if buf is None or end > buf.next_offset:
                return "behind"
        return "idle"


def _away(exc: KafkaError) -> str:
    """ "away" for a broker that did not answer; a refusal (a missing ACL) stops the consumer."""
    refusal = refused(exc, "read")
    if refusal is not None:
        raise refusal
    return "away"


def connect(options: ConsumerOptions) -> KafkaConsumer:
    """A kafka-python consumer with manual commits, once a broker answers.

    Waits up to ``options.broker_wait`` seconds (None: forever) for a broker, saying so in
    one line, then a UserError that says how to start one. What waiting cannot mend stops it
    at once: a refused login, an untrusted certificate, TLS on one side only (``diagnose``).
    """
    wait = options.broker_wait
    deadline = None if wait is None else time.monotonic() + wait
    said = False
    while True:
        left = 10.0 if deadline is None else deadline - time.monotonic()
        try:  # a short first try, so a missing broker is reported within a second
            return _connect_once(options, max(1.0, min(10.0 if said else 1.0, left)))
        except _NoBroker:
            cause = diagnose(options.bootstrap_servers)
            if cause is not None:
                raise UserError(cause) from None
            if deadline is not None and deadline - time.monotonic() <= 1:
                waited = f" after waiting {wait:g} s" if wait else ""
                raise UserError(
                    f"no Kafka broker at {options.bootstrap_servers}{waited}; start one with"
                    " `make kafka-up` (or wait longer with --broker-wait)"
                ) from None
            if not said:
                limit = "as long as it takes" if wait is None else f"up to {wait:g} s"
                print(
                    f"waiting for a Kafka broker at {options.bootstrap_servers} ({limit},"
                    " --broker-wait)",
                    file=sys.stderr,
                )
                said = True
            time.sleep(1)


class _NoBroker(Exception):
    pass


def _connect_once(options: ConsumerOptions, bootstrap_seconds: float) -> KafkaConsumer:
    extra: dict[str, Any] = {}
    if options.instance_id:
        extra["group_instance_id"] = options.instance_id
    try:
        return KafkaConsumer(
            bootstrap_servers=options.bootstrap_servers.split(","),
            group_id=options.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=max(1000, options.session_timeout_ms // 4),
            bootstrap_timeout_ms=int(bootstrap_seconds * 1000),
            **CLIENT_CONFIG,
            **extra,
            **client_settings(),
        )
    except (KafkaTimeoutError, KafkaError) as exc:
        refusal = refused(exc, "read", options.group)
        if refusal is not None:  # a wrong password: waiting does not mend it
            raise refusal from None
        if not isinstance(exc, KafkaTimeoutError) and "bootstrap" not in str(exc).lower():
            raise
        raise _NoBroker from None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" rec", desc="consumed", file=sys.stderr, mininterval=0.5)
