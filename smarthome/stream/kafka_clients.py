"""The scorer's Kafka clients: a read_committed group member, a transactional producer, topics.

Every expected failure (no broker, no input topic, a setting the client refuses) is a
one-line ``UserError`` that says what to do. Each client connects as the --kafka-config file in
force says (``client_settings``); what a secured cluster refuses (a login, a missing ACL) stops
the scorer at once with ``kafka_settings.explain``'s line, since no retry can mend it.

The transactional id names this process to the brokers' transaction coordinator. Two live
processes must never share one (each would fence the other), but a process restarted after a
crash should take its predecessor's: ``init_transactions`` then aborts whatever transaction
the dead process left open at once, instead of the coordinator waiting for its timeout while
read_committed readers of the output topics wait behind it. So the default id is
``<group>-<host>-<slot>``, the slot being the lowest number whose lock file
(``<tmp>/smarthome-stream-scorer/``) no live process holds: the kernel drops a dead
process's lock, so its restart gets the same slot back.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaConfigurationError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    TransactionalIdAuthorizationFailedError,
)

from smarthome.errors import UserError
from smarthome.ingest.producer import existing_partitions
from smarthome.kafka_settings import (
    client_settings,
    current,
    diagnose,
    not_connected,
    refusal_in,
    refused,
)

#: the coordinator aborts a transaction left open this long (a paused or dead scorer's), so
#: it bounds how long read_committed readers of a partition wait behind one; it must exceed
#: a commit interval plus a commit through a leader failover (a few seconds)
TRANSACTION_TIMEOUT_MS = 20_000
#: big fetches so a busy partition fills a poll; small polls keep a transaction's latency low
CONSUMER_CONFIG: dict[str, Any] = {
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "receive_buffer_bytes": 4 * 1024 * 1024,
    "reconnect_backoff_max_ms": 2000,  # find a restarted broker within seconds
}
PRODUCER_CONFIG: dict[str, Any] = {
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "reconnect_backoff_max_ms": 2000,
    # a transaction begun while the coordinator still writes the last one's markers is
    # refused (CONCURRENT_TRANSACTIONS) and retried after this long: kafka-python sleeps the
    # producer's whole retry_backoff_ms there (default 100), Java's client 20 ms (DESIGN §15)
    "retry_backoff_ms": 20,
}
#: a transaction call still blocked after this long is given up (``within``): by then the
#: coordinator has aborted the transaction anyway
TRANSACTION_CALL_TIMEOUT = TRANSACTION_TIMEOUT_MS / 1000 + 10
SLOT_DIR = Path(tempfile.gettempdir()) / "smarthome-stream-scorer"


def no_broker(bootstrap_servers: str, waited: float | None = None) -> UserError:
    after = f" after waiting {waited:g} s" if waited else ""
    return UserError(
        f"no Kafka broker at {bootstrap_servers}{after}; start one with `make kafka-up`"
        " (or wait longer with --broker-wait)"
    )


def connect_error(exc: BaseException, bootstrap_servers: str, what: str = "") -> UserError:
    """Why a client could not connect: a refused login (``explain``), what the connection
    shows (an untrusted certificate, TLS on one side only: ``diagnose``), or no broker."""
    otherwise = str(no_broker(bootstrap_servers))
    return UserError(not_connected(exc, bootstrap_servers, otherwise, what))


class _Consumer(KafkaConsumer):
    """A KafkaConsumer whose ``poll`` stops on a refusal (no READ on the topic or the group):
    the scorer waits out every other error, and a missing ACL does not mend itself."""

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().poll(*args, **kwargs)
        except KafkaError as exc:
            refusal = refused(exc, "read", self.config.get("group_id") or "")
            if refusal is not None:
                raise refusal from None
            raise


class _TransactionalProducer(KafkaProducer):
    """A KafkaProducer whose transaction calls stop on a refusal (no WRITE on an output
    topic, no access to the transactional id or the group): aborting and trying again would
    be refused again, for ever."""

    def _refusal(self, exc: KafkaError) -> UserError | None:
        refusal = refusal_in(exc)
        if refusal is None:
            return None
        what = ""
        if isinstance(refusal, TransactionalIdAuthorizationFailedError):
            what = self.config.get("transactional_id") or ""
        return refused(refusal, "write", what)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send(*args, **kwargs)
        except KafkaError as exc:
            raise self._refusal(exc) or exc from None

    def send_offsets_to_transaction(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send_offsets_to_transaction(*args, **kwargs)
        except KafkaError as exc:
            raise self._refusal(exc) or exc from None

    def commit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().commit_transaction(*args, **kwargs)
        except KafkaError as exc:
            raise self._refusal(exc) or exc from None


def connect_consumer(
    bootstrap_servers: str,
    group: str,
    session_timeout_ms: int,
    broker_wait: float | None,
    max_poll_records: int,
) -> KafkaConsumer:
    """A read_committed group member with manual commits, once a broker answers.

    Waits up to ``broker_wait`` seconds (None: forever), saying so in one line; what waiting
    cannot mend (a refused login, an untrusted certificate, TLS on one side only) stops it at
    once.
    """
    deadline = None if broker_wait is None else time.monotonic() + broker_wait
    said = False
    while True:
        left = 10.0 if deadline is None else deadline - time.monotonic()
        try:  # a short first try, so a missing broker is reported within a second
            return _Consumer(
                bootstrap_servers=bootstrap_servers.split(","),
                group_id=group,
                client_id=f"{group}-consumer",
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,  # a typo in --topic must not create one
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(1000, session_timeout_ms // 4),
                max_poll_records=max_poll_records,
                bootstrap_timeout_ms=int(max(1.0, min(10.0 if said else 1.0, left)) * 1000),
                **CONSUMER_CONFIG,
                **client_settings(),
            )
        except (KafkaConfigurationError, ValueError) as exc:
            raise UserError(f"bad consumer setting: {exc}") from None
        except KafkaError as exc:
            refusal = refused(exc, "read", group)
            if refusal is not None:
                raise refusal from None
            cause = diagnose(bootstrap_servers)
            if cause is not None:
                raise UserError(cause) from None
            if deadline is not None and deadline - time.monotonic() <= 1:
                raise no_broker(bootstrap_servers, broker_wait) from None
            if not said:
                limit = "as long as it takes" if broker_wait is None else f"up to {broker_wait:g} s"
                print(
                    f"waiting for a Kafka broker at {bootstrap_servers} ({limit}, --broker-wait)",
                    file=sys.stderr,
                )
                said = True
            time.sleep(1)


def input_partitions(consumer: KafkaConsumer, topic: str, wait: bool) -> int:
    """How many partitions ``topic`` has; UserError if it does not exist (unless ``wait``)."""
    said = False
    while True:
        try:
            exists = topic in consumer.topics()  # lists, never auto-creates
        except KafkaError as exc:
            raise UserError(f"cannot list the topics of the cluster: {exc}") from None
        if exists:
            return len(consumer.partitions_for_topic(topic))
        if not wait:
            properties = current()
            hidden = (  # the cluster lists only the topics a user may describe
                f" (or user {properties.username} may not describe it: ask the cluster's"
                " admin for an ACL)"
                if properties is not None and properties.uses_sasl
                else ""
            )
            raise UserError(
                f"topic {topic} does not exist{hidden}; start the producer (python"
                " kafka_producer.py) first, pass the right --topic, or --follow to wait for it"
            )
        if not said:
            print(f"waiting for topic {topic} to be created (--follow)", file=sys.stderr)
            said = True
        time.sleep(1)


def ensure_output_topics(bootstrap_servers: str, topics: list[str], partitions: int) -> list[str]:
    """Create each missing topic with ``partitions`` partitions; the names created."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers.split(","),
            client_id="smarthome-stream-scorer-admin",
            bootstrap_timeout_ms=10_000,
            **client_settings(),
        )
    except KafkaError as exc:
        raise connect_error(exc, bootstrap_servers) from None
    created = []
    try:
        for topic in topics:
            try:
                # replication -1: the brokers' default.replication.factor (3 on a cluster)
                admin.create_topics([NewTopic(topic, partitions, replication_factor=-1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                refusal = refused(exc, "create", topic)
                # a user who may not create topics is refused even one that exists
                if refusal is not None and existing_partitions(admin, topic):
                    continue
                raise refusal or UserError(f"cannot create output topic {topic}: {exc}") from None
    finally:
        admin.close()
    return created


def transactional_producer(
    bootstrap_servers: str, transactional_id: str, patient: bool = False
) -> KafkaProducer:
    """An initialised transactional producer (acks=all, idempotent by definition).

    ``init_transactions`` fences any older producer with the same id and aborts its open
    transaction. It waits up to 60 s, then a UserError; a ``patient`` caller (a running
    scorer replacing its producer during a broker failover, when the coordinator may need
    longer to abort the old transaction) tries again, saying so every 60 s.

    Each try is a new producer: kafka-python's retry of ``init_transactions`` waits on the
    request it sent first, and a request sent while the transaction coordinator moved
    between brokers can stay unanswered for good (seen after two leader kills: the new
    coordinator never received it, and the scorer waited for minutes).
    """
    while True:
        producer = _new_transactional_producer(bootstrap_servers, transactional_id)
        try:
            producer.init_transactions()
            return producer
        except KafkaTimeoutError:
            producer.close(timeout=1)
            if not patient:
                break
            print(
                f"still waiting for the transaction coordinator ({transactional_id})",
                file=sys.stderr,
                flush=True,
            )
        except KafkaError as exc:  # no access to the transactional id: waiting cannot mend it
            refusal = refused(exc, "write", transactional_id)
            if refusal is None:
                raise
            producer.close(timeout=1)
            raise refusal from None
    raise UserError(
        f"the brokers at {bootstrap_servers} did not start a transaction for"
        f" {transactional_id} within 60 s; are they up (`make kafka-status`), and do they"
        " allow transactions (transaction.state.log.replication.factor <= brokers)?"
    )


def _new_transactional_producer(bootstrap_servers: str, transactional_id: str) -> KafkaProducer:
    try:
        return _TransactionalProducer(
            bootstrap_servers=bootstrap_servers.split(","),
            client_id=transactional_id,
            transactional_id=transactional_id,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            bootstrap_timeout_ms=10_000,
            **PRODUCER_CONFIG,
            **client_settings(),
        )
    except (KafkaConfigurationError, ValueError, AssertionError) as exc:
        raise UserError(f"bad producer setting: {exc}") from None
    except KafkaError as exc:
        raise connect_error(exc, bootstrap_servers, transactional_id) from None


class CommittedOffsets:
    """A group's committed offset of a partition, never an answer to a call given up earlier.

    kafka-python (3.0.12) keeps the request of a ``committed(tp, timeout_ms=...)`` that timed
    out and answers the next call for the same partition from it, however old it has become
    (Java's client drops such a request once the generation moves on). A scorer paused in the
    middle of that call, or one whose call outwaited a pending transaction, would then seek to
    an offset from before commits it has since lost the partition over, and score those
    records again. So after a timeout the next read first takes that old answer, then asks
    afresh. ``tests/stream/test_stream_kafka.py`` pins this against a real broker.
    """

    def __init__(self, consumer: KafkaConsumer, timeout_ms: int) -> None:
        self.consumer, self.timeout_ms = consumer, timeout_ms
        self.given_up: set[TopicPartition] = set()

    def read(self, tp: TopicPartition) -> int | None:
        """The committed offset (None: none yet); KafkaError if the coordinator does not say
        (busy, away, or a transaction still pending on it)."""
        if tp in self.given_up:
            try:  # the answer to the call given up: it may be stale
                self.consumer.committed(tp, timeout_ms=self.timeout_ms)
            except KafkaTimeoutError:
                raise  # not answered yet: still given up
            except KafkaError:
                pass  # answered with an error: nothing is kept
            self.given_up.discard(tp)
        return self._ask(tp)

    def _ask(self, tp: TopicPartition) -> int | None:
        try:
            return self.consumer.committed(tp, timeout_ms=self.timeout_ms)
        except KafkaTimeoutError:
            self.given_up.add(tp)
            raise
        except KafkaError as exc:  # refused (no READ on the group): asking again would be too
            group = self.consumer.config.get("group_id") or ""
            refusal = refused(exc, "read", group)
            if refusal is not None:
                raise refusal from None
            raise


class TransactionStuck(Exception):
    """A transaction call that did not return in time; its producer must be replaced."""


def within(seconds: float, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``'s result or exception, or TransactionStuck after ``seconds``.

    kafka-python's transaction calls wait without a deadline. After a broker failover, its
    producer can bump its epoch on a produce error (KIP-360) and forget the open
    transaction while a call waits on it: that call would never return. So each runs on a
    daemon thread and is given up after ``seconds``; a given-up thread stays blocked until
    the process exits.
    """
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call(*args)))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=f"kafka-{call.__name__}", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TransactionStuck(f"{call.__name__} did not return within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value
    raise value


class SlotLock:
    """This process's claim on ``<prefix>-<slot>``, the lowest slot no live process holds."""

    def __init__(self, prefix: str, directory: Path = SLOT_DIR) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        slot = 0
        while True:
            path = directory / f"{_file_safe(prefix)}-{slot}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                slot += 1
                continue
            self.fd, self.slot = fd, slot
            self.transactional_id = f"{prefix}-{slot}"
            return

    def release(self) -> None:
        os.close(self.fd)


def default_transactional_id_prefix(group: str) -> str:
    return f"{group}-{socket.gethostname()}"


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
