"""Prometheus metrics of the stream scorer (``kafka_stream_predict.py --metrics-port``).

Read from the scorer's committed counts when Prometheus scrapes: nothing is added to the
scoring loop. Only what a transaction committed is counted (an aborted transaction's
records are read and counted again when they commit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from smarthome.stream.scorer import LATENCY_BUCKETS, StreamScorer


class ScorerCollector(Collector):
    """``smarthome_scorer_*``: counts, end-to-end latency, committed offsets and lag."""

    def __init__(self, scorer: StreamScorer) -> None:
        self.scorer = scorer

    def collect(self) -> Iterator[Any]:
        s = self.scorer.stats
        for name, doc, value in (
            ("records_scored", "records whose prediction was committed", s.scored),
            ("alerts", "alerts committed", s.alerts),
            ("records_rejected", "records committed to the dead-letter topic", s.rejected),
            ("transactions", "transactions committed", s.transactions),
            ("aborts", "transactions aborted (their records are read again)", s.aborts),
        ):
            yield CounterMetricFamily(f"smarthome_scorer_{name}", doc, value=value)
        cumulative = s.latency_counts.cumsum().tolist()
        bounds = [f"{bound:g}" for bound in LATENCY_BUCKETS] + ["+Inf"]
        buckets = list(zip(bounds, cumulative, strict=True))
        yield HistogramMetricFamily(
            "smarthome_scorer_end_to_end_latency_seconds",
            "a record's Kafka timestamp (its produce time) to its prediction's commit",
            buckets=buckets,
            sum_value=s.latency_sum,
        )
        yield GaugeMetricFamily(
            "smarthome_scorer_waiting_for_model_set",
            "1 while no model set exists to score with (nothing is consumed)",
            value=int(s.waiting_for_model),
        )
        model = GaugeMetricFamily(
            "smarthome_scorer_model_set_info", "the model set scoring now", labels=["model_set"]
        )
        if s.model_set:
            model.add_metric([s.model_set], 1)
        yield model
        committed = GaugeMetricFamily(
            "smarthome_scorer_committed_offset",
            "the next offset this scorer committed, per partition it owns",
            labels=["topic", "partition"],
        )
        lag = GaugeMetricFamily(
            "smarthome_scorer_lag_records",
            "records in the partition not yet scored and committed (high watermark - committed)",
            labels=["topic", "partition"],
        )
        for (topic, partition), (offset, high) in sorted(s.partitions.items()):
            committed.add_metric([topic, str(partition)], offset)
            if high is not None:
                lag.add_metric([topic, str(partition)], max(0, high - offset))
        yield committed
        yield lag
