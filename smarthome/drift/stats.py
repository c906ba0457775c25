"""Per-column drift of a batch against reference rows: scipy's tests, and PSI with numpy.

Numeric columns get the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``);
categorical ones (DeviceType, and the 0/1 columns UserPreferences and SmartHomeEfficiency,
whose KS test would only compare one proportion) the chi-squared test of the 2 x categories
table of counts (``scipy.stats.chi2_contingency``). Every column gets its population stability
index: ``sum((batch% - ref%) * ln(batch% / ref%))`` over the reference's decile bins (numeric)
or the categories, a share of 0 counted as 0.0001 (the usual floor).

A column drifts when its test rejects "same distribution" (p below ``alpha``) AND its PSI is
at least ``psi``: the p-value keeps small batches' noisy PSI from raising alarms, the PSI keeps
big batches' tiny-but-significant differences from raising them (DESIGN §17).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp

from smarthome.contracts.drift import ColumnDrift, Thresholds
from smarthome.contracts.records import RECORD_COLUMNS

NUMERIC_COLUMNS = [
    "UsageHoursPerDay",
    "EnergyConsumption",
    "MalfunctionIncidents",
    "DeviceAgeMonths",
]
CATEGORICAL_COLUMNS = ["DeviceType", "UserPreferences", "SmartHomeEfficiency"]
#: every checked column, in record order: all but the UserID
DRIFT_COLUMNS = [c for c in RECORD_COLUMNS if c != "UserID"]
#: p below 1% and PSI of at least 0.2 (0.1-0.25 is the usual "moderate shift" band, above
#: 0.25 "major"); ten PSI bins at the reference's deciles
DEFAULT_THRESHOLDS = Thresholds(alpha=0.01, psi=0.2, bins=10)
#: a bin's share is never taken below this (an empty bin would make PSI infinite)
PSI_FLOOR = 1e-4


def psi(reference_share: np.ndarray, batch_share: np.ndarray) -> float:
    ref = np.maximum(np.asarray(reference_share, float), PSI_FLOOR)
    new = np.maximum(np.asarray(batch_share, float), PSI_FLOOR)
    return float(np.sum((new - ref) * np.log(new / ref)))


def numeric_drift(
    column: str, reference: np.ndarray, batch: np.ndarray, th: Thresholds
) -> ColumnDrift:
    ref, new = np.asarray(reference, float), np.asarray(batch, float)
    ks = ks_2samp(ref, new)
    inner = np.linspace(0, 1, th.bins + 1)[1:-1]
    edges = np.unique(np.quantile(ref, inner))  # a discrete column has fewer distinct edges
    bins = len(edges) + 1
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=bins) / len(ref)
    new_share = np.bincount(np.searchsorted(edges, new, side="right"), minlength=bins) / len(new)
    value = psi(ref_share, new_share)
    p_value = float(ks.pvalue)
    return ColumnDrift(
        column=column,
        kind="numeric",
        test="ks",
        statistic=float(ks.statistic),
        p_value=p_value,
        psi=value,
        drifted=bool(p_value < th.alpha and value >= th.psi),
        reference_mean=float(ref.mean()),
        batch_mean=float(new.mean()),
    )


def categorical_drift(
    column: str, reference: pd.Series, batch: pd.Series, th: Thresholds
) -> ColumnDrift:
    ref_counts = reference.astype(str).value_counts()
    new_counts = batch.astype(str).value_counts()
    categories = sorted(set(ref_counts.index) | set(new_counts.index))
    table = np.array(
        [[ref_counts.get(c, 0) for c in categories], [new_counts.get(c, 0) for c in categories]],
        dtype=float,
    )
    if len(categories) < 2:  # one category on both sides: nothing can differ
        statistic, p_value = 0.0, 1.0
    else:
        result = chi2_contingency(table)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    value = psi(table[0] / table[0].sum(), table[1] / table[1].sum())
    numeric = pd.api.types.is_numeric_dtype(reference)
    return ColumnDrift(
        column=column,
        kind="categorical",
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        psi=value,
        drifted=bool(p_value < th.alpha and value >= th.psi),
        reference_mean=float(reference.mean()) if numeric else None,
        batch_mean=float(batch.mean()) if numeric else None,
    )


def column_drift(reference: pd.DataFrame, batch: pd.DataFrame, th: Thresholds) -> list[ColumnDrift]:
    """Every checked column of ``batch`` against ``reference`` (both non-empty)."""
    out = []
    for column in DRIFT_COLUMNS:
        if column in NUMERIC_COLUMNS:
            out.append(
                numeric_drift(column, reference[column].to_numpy(), batch[column].to_numpy(), th)
            )
        else:
            out.append(categorical_drift(column, reference[column], batch[column], th))
    return out
