"""Flat tables for the charts, from the API's typed answers (``smarthome.contracts.api``).

Every value is read by its field name in the manifest / clusters contract; a set whose
manifest could not be read is a row with its error in the sets table, never a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from smarthome.contracts.api import SetEntry
from smarthome.contracts.clusters import Segment
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.model_sets import set_number
from smarthome.contracts.records import DEVICE_TYPES, NUMERIC_FEATURES

#: chart metric -> (held-out value, baseline value or None) of a set's manifest; a value of
#: None is a metric the set's manifest does not record (it is left out of the chart)
HISTORY_METRICS: dict[str, Callable[[Manifest], tuple[float | None, float | None]]] = {
    "accuracy": lambda m: (
        m.models.efficiency.metrics.accuracy,
        m.models.efficiency.baseline.accuracy,
    ),
    "rmse": lambda m: (m.models.malfunction.metrics.rmse, m.models.malfunction.baseline.rmse),
    "silhouette": lambda m: (m.models.clustering.metrics.silhouette, None),
    "efficient_share_spread": lambda m: (
        m.models.clustering.metrics.efficient_share_spread,
        None,
    ),
}
HISTORY_COLUMNS = ["set", "set_name", "rows", "metric", "value", "baseline"]


def history_frame(sets: list[SetEntry]) -> pd.DataFrame:
    """One row per (readable set, metric): set, rows, metric, value, baseline; oldest first."""
    rows = []
    for entry in sets:
        if entry.manifest is None:
            continue
        for metric, read in HISTORY_METRICS.items():
            value, baseline = read(entry.manifest)
            if value is None:
                continue
            rows.append(
                {
                    "set": entry.manifest.set,
                    "set_name": entry.name,
                    "rows": entry.manifest.rows,
                    "metric": metric,
                    "value": value,
                    "baseline": float("nan") if baseline is None else baseline,
                }
            )
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    return frame.sort_values(["metric", "rows", "set"]).reset_index(drop=True)


def unreadable(sets: list[SetEntry]) -> list[SetEntry]:
    """The sets the API could not read or serve (their error is shown, not skipped)."""
    return [entry for entry in sets if entry.manifest is None]


def sets_table(sets: list[SetEntry]) -> pd.DataFrame:
    """One row per set, in the API's order (newest first): name, rows, when, each metric.

    An ``error`` column is added when a set's manifest is unreadable or the set failed to load.
    """
    rows = []
    for entry in sets:
        manifest = entry.manifest
        row: dict[str, Any] = {
            "set": manifest.set if manifest else set_number(entry.name),
            "set_name": entry.name,
            "rows": manifest.rows if manifest else None,
            "created_at": manifest.created_at if manifest else None,
        }
        for metric, read in HISTORY_METRICS.items():
            row[metric] = read(manifest)[0] if manifest else None
        row["error"] = entry.error
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty and table["error"].isna().all():
        table = table.drop(columns="error")
    return table


def profile_frame(segment: Segment, overall: dict[str, float]) -> pd.DataFrame:
    """Per feature: the segment's mean, the overall mean, and the difference in percent."""
    rows = []
    for feature in NUMERIC_FEATURES:
        mean, base = segment.means[feature], overall[feature]
        if mean is None:  # a segment with no device in the training data
            continue
        diff = (mean - base) / abs(base) * 100 if base else 0.0
        rows.append({"feature": feature, "segment": mean, "overall": base, "diff_pct": diff})
    return pd.DataFrame(rows, columns=["feature", "segment", "overall", "diff_pct"])


def device_mix_frame(segment: Segment) -> pd.DataFrame:
    """Each device type's share of the segment, in the record schema's order."""
    shares = segment.device_type_shares
    return pd.DataFrame({"device": list(DEVICE_TYPES), "share": [shares[d] for d in DEVICE_TYPES]})
