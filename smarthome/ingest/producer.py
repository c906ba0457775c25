"""Streaming dataset records into Kafka: keyed JSON, acks=all, idempotent, every send checked.

A message is one record (DESIGN §3): key = ``str(UserID)`` (same device, same partition,
order kept), value = UTF-8 JSON of the 8 columns with native types. Each send's future gets
a callback that counts it as delivered or failed, so the final counts are exact.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

from smarthome.errors import UserError
from smarthome.kafka_settings import client_settings, explain, not_connected, refusal_in, refused

#: measured on this machine with bench/bench_kafka.py (see its table): linger + big batches
#: let kafka-python amortise its per-batch work; lz4/gzip cost more CPU than they save on
#: a local broker, so no compression by default.
DEFAULT_LINGER_MS = 20
DEFAULT_BATCH_SIZE = 256 * 1024
DEFAULT_COMPRESSION = "none"
BOOTSTRAP_TIMEOUT_MS = 10_000  # "no broker" must be reported well within 15 s


def encode(record: dict[str, Any]) -> tuple[bytes, bytes]:
    """The Kafka key and value of one validated record."""
    value = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    return str(record["UserID"]).encode(), value


def no_broker_message(bootstrap_servers: str) -> str:
    return f"no Kafka broker at {bootstrap_servers}; start one with `make kafka-up`"


def connect_error(exc: BaseException, bootstrap_servers: str) -> UserError:
    """Why a client could not connect, in one line: a refused login (``explain``), what the
    connection shows (an untrusted certificate, TLS on one side only), or no broker."""
    return UserError(not_connected(exc, bootstrap_servers, no_broker_message(bootstrap_servers)))


def make_producer(
    bootstrap_servers: str,
    linger_ms: int = DEFAULT_LINGER_MS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    compression: str = DEFAULT_COMPRESSION,
    client_id: str = "smarthome-producer",
    delivery_timeout_s: float = 120,
) -> Any:
    """A KafkaProducer with acks=all and idempotence on, or a one-line UserError.

    It connects as the --kafka-config file in force says (``client_settings``)."""
    from kafka import KafkaProducer
    from kafka.codec import has_gzip, has_lz4
    from kafka.errors import KafkaConfigurationError, KafkaError

    available = {"none": True, "gzip": has_gzip(), "lz4": has_lz4()}
    if not available.get(compression, False):
        raise UserError(
            f"--compression {compression} needs its library: `pip install {compression}`"
        )
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap_servers.split(","),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,  # explicit: no duplicates when a retry follows a lost ack
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression_type=None if compression == "none" else compression,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            delivery_timeout_ms=int(delivery_timeout_s * 1000),
            # kafka-python wants delivery > linger + request timeout
            request_timeout_ms=min(30_000, int(delivery_timeout_s * 1000) - linger_ms - 1),
            **client_settings(),
        )
    except (KafkaConfigurationError, ValueError, AssertionError) as exc:
        raise UserError(
            f"bad producer setting (--bootstrap-servers {bootstrap_servers!r}?): {exc}"
        ) from None
    except KafkaError as exc:
        raise connect_error(exc, bootstrap_servers) from None


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int) -> str:
    """Create ``topic`` with ``partitions`` partitions unless it exists; say what happened."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers.split(","),
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            client_id="smarthome-producer-admin",
            **client_settings(),
        )
    except KafkaError as exc:
        raise connect_error(exc, bootstrap_servers) from None
    try:
        try:
            # replication -1: the brokers' default.replication.factor (3 on a local cluster)
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])
            return f"created topic {topic} with {partitions} partition(s)"
        except TopicAlreadyExistsError:
            have = existing_partitions(admin, topic) or "?"
            return f"topic {topic} already exists with {have} partition(s)"
        except KafkaError as exc:
            refusal = refused(exc, "create", topic)
            # a user who may not create topics is refused even one that exists
            if refusal is not None and (have := existing_partitions(admin, topic)):
                return f"topic {topic} already exists with {have} partition(s)"
            raise refusal or UserError(f"cannot create topic {topic}: {exc}") from None
    finally:
        admin.close()


def existing_partitions(admin: Any, topic: str) -> int | None:
    """How many partitions ``topic`` has; None if it does not exist, or may not be described."""
    from kafka.errors import KafkaError

    try:
        described = admin.describe_topics([topic])
    except KafkaError:
        return None
    if not described or described[0].get("error_code"):
        return None
    return len(described[0].get("partitions", [])) or None


@dataclass
class Counts:
    """Thread-safe delivery counts, updated by the producer's I/O thread via callbacks."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)
    #: the first send the cluster refused (a missing ACL, a login no longer accepted): no
    #: later send can succeed, so ``send_all`` stops sending (``stop``)
    refusal: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    #: the topic sent to (``send_all`` sets it), for the refusal's line
    topic: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_done(self, result: Any) -> None:
        if isinstance(result, BaseException):
            with self._lock:
                self.failed += 1
                if len(self.errors) < 5:
                    name, text = type(result).__name__, str(result)
                    self.errors.append(text if text.startswith(name) else f"{name}: {text}")
                if self.refusal is None and (refusal := refusal_in(result)) is not None:
                    self.refusal = refusal
                    self.stop.set()
        else:
            with self._lock:
                self.delivered += 1

    @property
    def unconfirmed(self) -> int:
        return self.sent - self.delivered - self.failed

    def summary(self) -> str:
        return f"delivered {self.delivered}, failed {self.failed + self.unconfirmed}"

    def failure_line(self, delivery_timeout: float) -> str:
        """One line on why records failed: usually brokers that cannot reach acks=all."""
        failed = self.failed + self.unconfirmed
        if self.refusal is not None:
            refusal = self.refusal
            if isinstance(refusal, ClusterAuthorizationFailedError) and self.topic:
                # an idempotent producer may start only with WRITE on a topic (Kafka >= 3.0
                # implies IDEMPOTENT_WRITE from it): without, it may write none
                refusal = TopicAuthorizationFailedError(self.topic)
            return (
                f"error: {failed} record(s) not written: {explain(refusal, 'write')}."
                " Records counted as delivered are safe; nothing more was sent."
            )
        first = self.errors[0] if self.errors else "no acknowledgement before the flush timeout"
        return (
            f"error: {failed} record(s) not acknowledged by the brokers with acks=all within"
            f" {delivery_timeout:g} s (first: {first.splitlines()[0]}); with too few brokers up"
            " for min.insync.replicas none can be; see `make kafka-status`. Records counted as"
            " delivered are safe."
        )


def key_partitioner(producer: Any, topic: str) -> Callable[[bytes], int]:
    """Kafka's default keyed partitioner (murmur2 of the key over all partitions), memoised.

    The same partition as kafka-python/Java would pick, but the pure-Python murmur2 runs once
    per key instead of once per send: replayed datasets repeat keys (~14% less CPU/record).
    """
    from kafka.errors import KafkaError
    from kafka.partitioner.default import murmur2

    try:
        count = len(producer.partitions_for(topic))  # waits for metadata (auto-creates topic)
    except KafkaError as exc:
        raise refused(exc, "write", topic) or UserError(
            f"topic {topic} is not available: {exc}"
        ) from None

    @functools.lru_cache(maxsize=1 << 16)
    def partition(key: bytes) -> int:
        return (murmur2(key) & 0x7FFFFFFF) % count

    return partition


def paced(
    messages: Iterable[tuple[bytes, bytes]],
    rate: float = 0,
    jitter_ms: tuple[float, float] | None = None,
    rng: random.Random | None = None,
) -> Iterator[tuple[bytes, bytes]]:
    """Yield messages at ``rate`` per second (0 = no limit), plus an optional random delay."""
    rng = rng or random.Random()
    start = time.monotonic()
    for i, message in enumerate(messages):
        if rate > 0:
            ahead = start + i / rate - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
        yield message
        if jitter_ms is not None:
            time.sleep(rng.uniform(*jitter_ms) / 1000)


def replay(
    messages: list[tuple[bytes, bytes]], limit: int = 0, loop: bool = False
) -> Iterator[tuple[bytes, bytes]]:
    """The messages once (or forever with ``loop``), cut at ``limit`` (0 = no limit)."""
    stream: Iterable[tuple[bytes, bytes]] = (
        itertools.chain.from_iterable(itertools.repeat(messages)) if loop and messages else messages
    )
    return itertools.islice(stream, limit) if limit > 0 else iter(stream)


def send_all(
    producer: Any,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    total: int | None = None,
    progress: bool = True,
    flush_timeout: float = 120,
    counts: Counts | None = None,
) -> Counts:
    """Send every message, count each future's outcome, flush; also after Ctrl-C (.interrupted).

    A send the cluster refuses (``Counts.refusal``) stops the sending: the rest would be too.
    """
    from tqdm import tqdm

    counts = counts or Counts()
    counts.topic = topic
    on_done = counts.on_done
    send = producer.send
    partition = key_partitioner(producer, topic)
    bar = tqdm(
        total=total, unit="rec", file=sys.stderr, disable=not progress, mininterval=0.5, smoothing=0
    )
    shown = 0
    with _ctrl_c_as_flag(counts.stop) as stop:
        try:
            for key, value in messages:
                if stop.is_set():
                    break
                send(topic, key=key, value=value, partition=partition(key)).add_both(on_done)
                counts.sent += 1
                if counts.sent - shown >= 500:
                    bar.update(counts.sent - shown)
                    shown = counts.sent
        finally:
            bar.update(counts.sent - shown)
            bar.close()
        counts.interrupted = stop.is_set() and counts.refusal is None
    if counts.interrupted:
        print(f"interrupted: flushing {counts.unconfirmed} record(s) in flight", file=sys.stderr)
    _flush(producer, flush_timeout)
    return counts


@contextlib.contextmanager
def _ctrl_c_as_flag(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """Ctrl-C sets a flag checked between sends instead of raising inside one.

    A KeyboardInterrupt raised between ``send()`` and registering its callback would leave a
    record delivered but never counted; stopping between sends keeps the counts exact.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def close(producer: Any) -> None:
    """Close, giving up quietly on what is still unacknowledged (it is counted as failed)."""
    from kafka.errors import KafkaError

    try:
        producer.close(timeout=10)
    except KafkaError:
        # kafka-python could not flush batches the brokers never took (no leader, no ISR);
        # they are counted as failed already. Its __del__ tries once more at exit and its
        # error would be the only traceback the user sees: that one is not shown.
        _quiet_failed_close()


def _quiet_failed_close() -> None:
    """Hide the KafkaError a producer's ``__del__`` raises at exit after a failed close
    (Python's public hook for errors it cannot raise); every other error is shown as usual."""
    from kafka.errors import KafkaError

    shown = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KafkaError):
            shown(unraisable)

    sys.unraisablehook = hook


def _flush(producer: Any, timeout: float) -> None:
    from kafka.errors import KafkaError

    try:
        producer.flush(timeout=timeout)
    except KafkaError as exc:  # a timeout: what is unconfirmed is counted as failed
        print(f"flush did not complete: {exc}", file=sys.stderr)
