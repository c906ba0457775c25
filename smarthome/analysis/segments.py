"""Cluster profiles and their generated names and descriptions (``clusters.json``).

A profile is built from small per-(cluster, device type) aggregates (:class:`GroupStats`), so
training and ``analyze_clusters.py`` compute them in Spark (``analysis/profile.py``) and collect
only k x device-type rows, never the records; ``profile_clusters`` computes the same aggregates
with pandas for a small frame. Both write the same file, and the UI never needs hand-copied
descriptions (their wording: ``analysis/segment_words.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smarthome.analysis.segment_words import words_of
from smarthome.contracts.clusters import Clusters, Overall, Segment
from smarthome.contracts.records import DEVICE_TYPES, EFFICIENCY_LABEL, NUMERIC_FEATURES


@dataclass(frozen=True)
class GroupStats:
    """Aggregates of the rows of one (cluster, device type) pair: all a profile needs."""

    cluster: int
    device_type: str
    rows: int
    means: dict[str, float]  # per numeric feature
    m2: dict[str, float]  # per numeric feature: sum of squared deviations from the group mean
    efficient: int  # rows labelled efficient


@dataclass
class _Pooled:
    """Several groups pooled: size, per-type sizes, means, M2 (Chan et al.), efficient rows."""

    rows: int
    types: dict[str, int]
    means: dict[str, float]
    m2: dict[str, float]
    efficient: int


def _pool(groups: list[GroupStats]) -> _Pooled:
    rows = sum(g.rows for g in groups)
    types: dict[str, int] = {}
    for g in groups:
        types[g.device_type] = types.get(g.device_type, 0) + g.rows
    means, m2 = {}, {}
    for c in NUMERIC_FEATURES:
        mean = sum(g.rows * g.means[c] for g in groups) / rows if rows else np.nan
        means[c] = mean
        # pooled squared deviations: stable, unlike sum(x^2) - n*mean^2
        m2[c] = sum(g.m2[c] + g.rows * (g.means[c] - mean) ** 2 for g in groups)
    return _Pooled(rows, types, means, m2, sum(g.efficient for g in groups))


def _shares(pooled: _Pooled) -> dict[str, float]:
    total = max(pooled.rows, 1)
    return {t: round(float(pooled.types.get(t, 0)) / total, 6) for t in DEVICE_TYPES}


def _means(pooled: _Pooled) -> dict[str, float]:
    return {c: round(float(pooled.means[c]), 6) for c in NUMERIC_FEATURES}


def profile_from_groups(groups: Iterable[GroupStats], k: int) -> Clusters:
    """Per-cluster size, share, feature means, device-type mix, efficiency rate, name and
    description.

    ``groups`` holds one :class:`GroupStats` per (cluster id, device type) with rows; a
    cluster id in 0..k-1 that no group names is listed with size 0.
    """
    groups = list(groups)
    everything = _pool(groups)
    total = everything.rows
    overall = Overall(
        rows=total,
        means=_means(everything),
        stds={
            c: round(float(np.sqrt(everything.m2[c] / total)) if total else np.nan, 6)
            for c in NUMERIC_FEATURES
        },
        device_type_shares=_shares(everything),
        efficiency_rate=round(everything.efficient / total, 6) if total else 0.0,
    )
    segments = []
    for cluster_id in range(k):
        part = _pool([g for g in groups if g.cluster == cluster_id])
        size = part.rows
        segment = Segment(
            id=cluster_id,
            size=size,
            share=round(size / total, 6) if total else 0.0,
            means=_means(part) if size else dict.fromkeys(NUMERIC_FEATURES),
            overall_means=overall.means,
            device_type_shares=_shares(part),
            efficiency_rate=round(part.efficient / size, 6) if size else 0.0,
            description="",
        )
        segments.append(segment.model_copy(update=words_of(segment, overall)))
    return Clusters(k=k, overall=overall, clusters=segments)


def group_stats(records: pd.DataFrame, cluster_col: str) -> list[GroupStats]:
    """The :class:`GroupStats` of an in-memory frame (records plus ``cluster_col``)."""
    out = []
    for (cluster_id, device_type), part in records.groupby([cluster_col, "DeviceType"]):
        means = {c: float(part[c].mean()) for c in NUMERIC_FEATURES}
        out.append(
            GroupStats(
                cluster=int(cluster_id),
                device_type=str(device_type),
                rows=len(part),
                means=means,
                m2={c: float(((part[c] - means[c]) ** 2).sum()) for c in NUMERIC_FEATURES},
                efficient=int(part[EFFICIENCY_LABEL].sum()),
            )
        )
    return out


def profile_clusters(records: pd.DataFrame, cluster_col: str, k: int) -> Clusters:
    """:func:`profile_from_groups` of an in-memory frame (small data, unit tests)."""
    return profile_from_groups(group_stats(records, cluster_col), k)


def redescribe(profile: Clusters) -> Clusters:
    """Every name and description regenerated from the stored statistics (no data needed)."""
    segments = [s.model_copy(update=words_of(s, profile.overall)) for s in profile.clusters]
    return profile.model_copy(update={"clusters": segments})


def table(profile: Clusters) -> str:
    """A plain-text table of the segments for the terminal."""
    overall = profile.overall
    short = {
        "UsageHoursPerDay": "usage h",
        "EnergyConsumption": "kWh",
        "UserPreferences": "prefs",
        "MalfunctionIncidents": "malf.",
        "DeviceAgeMonths": "age mo",
    }
    head = ["seg", "size", "share"] + [short[c] for c in NUMERIC_FEATURES] + ["efficient", "mix"]
    rows = []
    for c in profile.clusters:
        means = c.means
        mix = ", ".join(
            f"{t} {s:.0%}"
            for t, s in sorted(c.device_type_shares.items(), key=lambda kv: -kv[1])
            if s >= 0.05
        )
        rows.append(
            [str(c.id), str(c.size), f"{c.share:.1%}"]
            + ["-" if means[f] is None else f"{means[f]:.2f}" for f in NUMERIC_FEATURES]
            + [f"{c.efficiency_rate:.1%}", mix]
        )
    rows.append(
        ["all", str(overall.rows), "100.0%"]
        + [f"{overall.means[f]:.2f}" for f in NUMERIC_FEATURES]
        + [f"{overall.efficiency_rate:.1%}", "-"]
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines += [c.description for c in profile.clusters]
    return "\n".join(lines)
