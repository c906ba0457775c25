"""The exactly-once batch consumer: Kafka topic -> batch CSV files (DESIGN §4-5).

Per partition, records are buffered and published as one batch file (``BatchWriter``); only
after the file is renamed into place and the folder fsynced is ``endOffset + 1`` committed.
The files themselves are the source of truth for where to resume: on every assignment the
consumer reads the resume point of each partition from the file names (and the rejected file)
and never writes an offset at or below it again, so

* a crash before the rename loses nothing (the offset was not committed, it is read again),
* a crash between the rename and the commit duplicates nothing (the name says it is done).

Invalid messages go to ``rejected/<topic>+<partition>.jsonl`` just before the batch that
covers their offsets is renamed; a rejected entry at or below the last one in that file is
never appended twice (a crash in between re-reads them, and they are skipped).

Test hooks (crash tests only): ``SMARTHOME_TEST_CRASH_BEFORE_RENAME=N`` /
``SMARTHOME_TEST_CRASH_AFTER_RENAME=N`` make the process ``os._exit(86)`` right before/after
the N-th batch rename, without committing or cleaning up, like a SIGKILL at that moment.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from smarthome.batch_writer import (
    BatchWriter,
    batch_resume_offset,
    crash_hooks_from_env,
    rejected_entry,
    rejected_resume_offset,
)
from smarthome.cli import UserError
from smarthome.config import CONSUMER_GROUP
from smarthome.schema import RecordError, parse_record_json

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


@dataclass
class Summary:
    consumed: int = 0
    records: int = 0
    files: int = 0
    rejected: int = 0
    skipped: int = 0
    commit_failures: int = 0
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
    if raw is None:
        raise RecordError(["record: empty message (null value)"])
    try:
        return list(parse_record_json(raw).values())  # already in RECORD_COLUMNS order
    except RecordError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:  # say so, rather than "invalid JSON"
            reason = f"record: not valid UTF-8 ({exc.reason} at byte {exc.start})"
            raise RecordError([reason]) from None
        raise


class _Listener(ConsumerRebalanceListener):
    """Drops buffers of revoked partitions, reads resume points of assigned ones from disk.

    Never commits nor asks the broker anything (a sync listener runs on kafka-python's IO
    loop, where a commit raises); an assigned partition is paused until the main loop has
    compared its position with the disk's resume point (``_position_partitions``).
    """

    def __init__(self, owner: BatchConsumer):
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.owner.buffers.pop(tp, None)
            self.owner.pending_seek.discard(tp)

    def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self.owner.open_partition(tp)
        if assigned:
            self.owner.consumer.pause(*assigned)


class BatchConsumer:
    """One consumer process: poll, validate, buffer per partition, publish, commit."""

    def __init__(self, options: ConsumerOptions, consumer: KafkaConsumer | None = None):
        self.options = options
        self.writer = BatchWriter(options.batch_dir, crash_hooks_from_env())
        self.summary = Summary()
        self.buffers: dict[TopicPartition, PartitionBuffer] = {}
        self.pending_seek: set[TopicPartition] = set()
        self.to_commit: dict[TopicPartition, OffsetAndMetadata] = {}
        self.stop_reason = ""
        self.broker_away = False
        self.last_activity = time.monotonic()
        self.consumer = consumer or connect(options)
        self.consumer.subscribe([options.topic], listener=_Listener(self))

    def open_partition(self, tp: TopicPartition) -> None:
        """Start a partition from what is on disk (called on every assignment)."""
        batch_dir = self.options.batch_dir
        self.buffers[tp] = PartitionBuffer(
            next_offset=batch_resume_offset(batch_dir, tp.topic, tp.partition),
            rejected_floor=rejected_resume_offset(batch_dir, tp.topic, tp.partition),
        )
        self.pending_seek.add(tp)
        self.last_activity = time.monotonic()  # a rebalance restarts the idle clock

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def run(self) -> Summary:
        """Consume until idle for ``idle_timeout`` (unless ``follow``) or a stop request."""
        opts = self.options
        bar = _progress(opts.progress)
        poll_ms = int(1000 * max(0.05, min(1.0, opts.max_batch_age, opts.idle_timeout)))
        try:
            while not self.stop_reason:
                polled = self._poll(poll_ms)
                now = time.monotonic()
                count = 0
                for tp, records in polled.items():
                    count += len(records)
                    self._take(tp, records, now)
                if count:
                    self.last_activity = now
                    self.summary.first_record_at = self.summary.first_record_at or now
                    self.summary.consumed += count
                    if bar is not None:
                        bar.update(count)
                self._position_partitions()
                self._flush_aged(now)
                self.commit_published()
                if not opts.follow and now - self.last_activity >= opts.idle_timeout:
                    self.stop_reason = f"no new record for {opts.idle_timeout:g} s"
            self.flush_all()
        finally:
            if bar is not None:
                bar.close()
            self.consumer.close(autocommit=False)
        self.summary.stopped_by = self.stop_reason
        return self.summary

    def _poll(self, poll_ms: int) -> dict[TopicPartition, list[Any]]:
        """One poll; a broker that is away (restart, network) is waited for, not fatal."""
        try:
            polled = self.consumer.poll(timeout_ms=poll_ms)
        except KafkaError as exc:
            if not exc.retriable:
                raise UserError(f"Kafka error, stopping without committing more: {exc}") from None
            if not self.broker_away:
                print(f"warning: broker unreachable, retrying: {exc}", file=sys.stderr)
            self.broker_away = True
            time.sleep(poll_ms / 1000)
            return {}
        if self.broker_away:
            print("broker reachable again", file=sys.stderr)
            self.broker_away = False
        return polled

    def _take(self, tp: TopicPartition, records: list[Any], now: float) -> None:
        buf = self.buffers.get(tp)
        if buf is None:  # assigned without the listener having run: read the disk now
            self.open_partition(tp)
            buf = self.buffers[tp]
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

    def _position_partitions(self) -> None:
        """Start each newly assigned partition at max(committed offset, disk resume point).

        Always an explicit seek: kafka-python keeps the fetch position of a partition that is
        revoked and assigned again, but its unwritten buffer was dropped, so the position must
        go back to what is durable (the committed offset or the files, whichever is ahead).
        """
        for tp in list(self.pending_seek):
            buf = self.buffers.get(tp)
            if buf is None or tp not in self.consumer.assignment():
                self.pending_seek.discard(tp)
                continue
            try:
                committed = self.consumer.committed(tp, timeout_ms=10_000)
            except KafkaError:
                continue  # coordinator busy or away: try again after the next poll
            start = max(buf.next_offset, committed or 0)
            buf.next_offset = start
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
        """
        if buf.start is None:
            return
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
        except KafkaError as exc:  # the files are on disk; their names are the resume point
            self.summary.commit_failures += 1
            where = ", ".join(f"{tp.topic}+{tp.partition}@{o.offset}" for tp, o in offsets.items())
            print(f"warning: commit of {where} failed: {exc}", file=sys.stderr)
        self.summary.last_write_at = time.monotonic()


def connect(options: ConsumerOptions) -> KafkaConsumer:
    """A kafka-python consumer with manual commits, or UserError when no broker answers."""
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
            bootstrap_timeout_ms=10_000,
            **CLIENT_CONFIG,
            **extra,
        )
    except (KafkaTimeoutError, KafkaError) as exc:
        if not isinstance(exc, KafkaTimeoutError) and "bootstrap" not in str(exc).lower():
            raise
        raise UserError(
            f"no Kafka broker at {options.bootstrap_servers}; start one with `make kafka-up`"
        ) from None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" rec", desc="consumed", file=sys.stderr, mininterval=0.5)


def install_stop_handlers(batch_consumer: BatchConsumer) -> None:
    """First Ctrl-C/SIGTERM: finish cleanly (write buffers, commit). Second Ctrl-C: abort."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: Any) -> None:
        if batch_consumer.stop_reason and signum == signal.SIGINT:
            raise KeyboardInterrupt
        batch_consumer.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
