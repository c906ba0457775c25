"""Segment profiles (``clusters.json``) of a Spark DataFrame without collecting its rows.

One groupBy(cluster, DeviceType) job returns k x device-type aggregate rows (count, means,
population variances, efficient rows); ``segments.profile_from_groups`` pools them into the
profile. The driver's memory therefore stays flat in the number of records, and training and
``analyze_clusters.py`` share this one code path.
"""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smarthome.analysis.segments import GroupStats, profile_from_groups
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.records import EFFICIENCY_LABEL, NUMERIC_FEATURES


def spark_group_stats(df: DataFrame, cluster_col: str) -> list[GroupStats]:
    """One :class:`GroupStats` per (cluster, device type) present in ``df``."""
    aggs = [F.count(F.lit(1)).alias("rows"), F.sum(EFFICIENCY_LABEL).alias("efficient")]
    for i, c in enumerate(NUMERIC_FEATURES):
        value = F.col(c).cast("double")
        aggs += [F.avg(value).alias(f"mean{i}"), F.var_pop(value).alias(f"var{i}")]
    rows = df.groupBy(F.col(cluster_col).alias("cluster"), "DeviceType").agg(*aggs).collect()
    return [
        GroupStats(
            cluster=int(r["cluster"]),
            device_type=str(r["DeviceType"]),
            rows=int(r["rows"]),
            means={c: float(r[f"mean{i}"]) for i, c in enumerate(NUMERIC_FEATURES)},
            m2={c: float(r[f"var{i}"]) * r["rows"] for i, c in enumerate(NUMERIC_FEATURES)},
            efficient=int(r["efficient"]),
        )
        for r in rows
    ]


def profile_segments(model: PipelineModel, df: DataFrame, k: int) -> Clusters:
    """The ``clusters.json`` profile of ``df``'s rows as segmented by the KMeans ``model``."""
    segment_col = model.stages[-1].getPredictionCol()
    return profile_from_groups(spark_group_stats(model.transform(df), segment_col), k)
