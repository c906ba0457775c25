"""Prometheus metrics of the streaming stages, in the text format, with ``prometheus_client``.

The producer and the consumer already count everything for their summary line; a
collector reads those counts when Prometheus scrapes, so metrics add nothing to the hot
path. ``serve(port, collector)`` starts the ``/metrics`` server on 127.0.0.1 (``--metrics-port``,
off by default). Names, units and labels: docs/operations.md ("Metrics and Prometheus").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.manifest import Manifest

if TYPE_CHECKING:
    from smarthome.ingest.consumer import BatchConsumer
    from smarthome.ingest.producer import Counts


def serve(port: int, *collectors: Collector, host: str = "127.0.0.1") -> Any:
    """Serve ``collectors`` on http://host:port/metrics in a daemon thread; the server."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        from smarthome.errors import UserError

        raise UserError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc})") from None
    return server


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class ProducerCollector(Collector):
    """``smarthome_producer_records_{sent,delivered,failed}_total`` from the send counts."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Any]:
        c = self.counts
        yield _counter("smarthome_producer_records_sent", "records handed to the client", c.sent)
        yield _counter(
            "smarthome_producer_records_delivered",
            "records the brokers acknowledged (acks=all)",
            c.delivered,
        )
        yield _counter(
            "smarthome_producer_records_failed",
            "records the brokers did not acknowledge within the delivery timeout",
            c.failed,
        )


class ConsumerCollector(Collector):
    """The batch consumer's counts, and per partition its committed offset and its lag."""

    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Any]:
        s = self.owner.summary
        for name, doc, value in (
            ("consumed", "messages polled from Kafka", s.consumed),
            ("records_written", "records published in batch files", s.records),
            ("records_rejected", "messages written to rejected/ with a reason", s.rejected),
            ("files_published", "batch files renamed into place", s.files),
            ("commit_failures", "offset commits that failed (the files stay the truth)",
             s.commit_failures),
        ):  # fmt: skip
            yield _counter(f"smarthome_consumer_{name}", doc, value)
        committed = GaugeMetricFamily(
            "smarthome_consumer_committed_offset",
            "the next offset this consumer committed, per partition it owns",
            labels=["topic", "partition"],
        )
        lag = GaugeMetricFamily(
            "smarthome_consumer_lag_records",
            "records in the partition not yet in a batch file (high watermark - committed)",
            labels=["topic", "partition"],
        )
        for (topic, partition), (offset, high) in sorted(self.owner.partition_stats.items()):
            committed.add_metric([topic, str(partition)], offset)
            if high is not None:
                lag.add_metric([topic, str(partition)], max(0, high - offset))
        yield committed
        yield lag


class TrainingCollector(Collector):
    """``spark_training.py --metrics-port``: what the model folder says, read when scraped.

    Sets published since this process started (their manifests carry the seconds per set
    and per model), and whether a set is being built right now (a folder in ``.tmp/``), so
    the trainer's code needs no hooks.
    """

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self.started = datetime.now(timezone.utc)

    def _ours(self) -> list[Manifest]:
        """Manifests of the sets published since the start (this version's sets only)."""
        manifests = []
        for folder in registry.list_sets(self.model_dir) if self.model_dir.is_dir() else []:
            try:
                manifest = Manifest.read(folder / registry.MANIFEST)
            except ContractError:
                continue  # not this run's: a run writes the current format
            if manifest.created >= self.started.replace(microsecond=0):
                manifests.append(manifest)
        return manifests

    def collect(self) -> Iterator[Any]:
        ours = self._ours()
        yield _counter("smarthome_training_sets_trained", "model sets published", len(ours))
        tmp = registry.tmp_dir(self.model_dir)
        building = tmp.is_dir() and any(p.is_dir() for p in tmp.iterdir())
        yield GaugeMetricFamily(
            "smarthome_training_in_progress", "1 while a model set is being built", value=building
        )
        newest = ours[-1] if ours else None
        yield GaugeMetricFamily(
            "smarthome_training_last_set_number", "number of the newest set published",
            value=newest.set if newest else 0,
        )  # fmt: skip
        per_set = GaugeMetricFamily(
            "smarthome_training_last_set_seconds", "seconds the newest published set took"
        )
        if newest:
            per_set.add_metric([], newest.seconds)
        yield per_set
        per_model = GaugeMetricFamily(
            "smarthome_training_last_model_seconds",
            "seconds each model of the newest set took to fit",
            labels=["model"],
        )
        if newest:
            for name in registry.MODEL_NAMES:
                section = getattr(newest.models, name)
                per_model.add_metric([name], section.training_seconds)
        yield per_model
        total = CounterMetricFamily(
            "smarthome_training_set_seconds", "seconds spent building published sets"
        )
        total.add_metric([], sum(m.seconds for m in ours))
        yield total
