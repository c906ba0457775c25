"""Prometheus metrics of the drift checks, read from the reports when scraped (DESIGN §17).

``spark_training.py --metrics-port`` serves them next to the training metrics. Per column of
the newest checked batch: its PSI, its test's p-value and whether it drifted; and the counts
of batches checked and of batches that raised an alarm.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from smarthome.contracts.drift import read_batch_reports


class DriftCollector(Collector):
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)

    def collect(self) -> Iterator[Any]:
        reports = read_batch_reports(self.model_dir)
        yield CounterMetricFamily(
            "smarthome_drift_batches_checked", "batch files compared with the champion's "
            "training rows", value=len(reports),
        )  # fmt: skip
        yield CounterMetricFamily(
            "smarthome_drift_batches_alarmed", "batch files in which a column drifted",
            value=sum(r.alarm for r in reports),
        )  # fmt: skip
        newest = reports[-1] if reports else None
        yield GaugeMetricFamily(
            "smarthome_drift_alarm", "1 when a column of the newest checked batch drifted",
            value=int(bool(newest and newest.alarm)),
        )  # fmt: skip
        psi = GaugeMetricFamily(
            "smarthome_drift_psi", "PSI of each column of the newest checked batch",
            labels=["column"],
        )  # fmt: skip
        p_value = GaugeMetricFamily(
            "smarthome_drift_p_value",
            "KS (numeric) or chi-squared (categorical) p-value per column of the newest batch",
            labels=["column", "test"],
        )
        drifted = GaugeMetricFamily(
            "smarthome_drift_column_drifted",
            "1 when the column of the newest checked batch drifted past its thresholds",
            labels=["column"],
        )
        for column in newest.columns if newest else []:
            psi.add_metric([column.column], column.psi)
            p_value.add_metric([column.column, column.test], column.p_value)
            drifted.add_metric([column.column], int(column.drifted))
        yield psi
        yield p_value
        yield drifted
