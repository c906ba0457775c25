"""Turn the API's manifests and cluster profiles into flat tables for charts.

The manifest and clusters.json formats belong to the training stage (DESIGN §6); this module
reads them defensively: a missing key is a gap in a chart, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd

from smarthome.contracts.model_sets import SET_NAME
from smarthome.contracts.records import DEVICE_TYPES, NUMERIC_FEATURES

#: chart metric -> (model name in the set, metric key names to look for)
HISTORY_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "accuracy": ("efficiency", ("accuracy",)),
    "rmse": ("malfunction", ("rmse",)),
    "silhouette": ("clustering", ("silhouette",)),
}
_ROW_KEYS = ("row_count", "rows", "n_rows", "num_rows", "rows_trained", "training_rows")
_SET_KEYS = ("set_number", "set", "number", "set_no")
_NAME_KEYS = ("_set_name", "name", "model_set", "set_name", "folder", "id")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _leaves(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    """Every finite number inside nested dicts, with the lower-cased key path to it."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaves(value, (*path, str(key).lower()))
    else:
        number = _number(obj)
        if number is not None:
            yield path, number


def find_metric(entry: Any, names: tuple[str, ...]) -> tuple[float | None, float | None]:
    """(held-out metric, baseline metric) for one model's manifest entry."""
    value = baseline = None
    for path, number in _leaves(entry):
        if not path:
            continue
        is_baseline = any("baseline" in p or "trivial" in p for p in path)
        named = any(n in path[-1] for n in names)
        if is_baseline and baseline is None and (named or path[-1].startswith("baseline")):
            baseline = number
        elif not is_baseline and value is None and named and "train" not in path[-1]:
            value = number
    return value, baseline


def set_label(manifest: dict[str, Any]) -> tuple[int | None, str]:
    """(set number, folder name) of a manifest, whichever of the two it carries."""
    name = next((str(manifest[k]) for k in _NAME_KEYS if isinstance(manifest.get(k), str)), "")
    number = next(
        (int(manifest[k]) for k in _SET_KEYS if _number(manifest.get(k)) is not None), None
    )
    match = SET_NAME.match(name)
    if number is None and match:
        number = int(match.group(2))
    return number, name


def row_count(manifest: dict[str, Any]) -> int | None:
    for key in _ROW_KEYS:
        number = _number(manifest.get(key))
        if number is not None:
            return int(number)
    return None


def model_entry(manifest: dict[str, Any], model: str) -> Any:
    models = manifest.get("models")
    if isinstance(models, dict) and model in models:
        return models[model]
    return manifest.get(model, {})


def history_frame(manifests: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (set, metric): set, rows, metric, value, baseline — oldest set first."""
    rows = []
    for manifest in manifests:
        number, name = set_label(manifest)
        n_rows = row_count(manifest)
        for metric, (model, names) in HISTORY_METRICS.items():
            value, baseline = find_metric(model_entry(manifest, model), names)
            if value is None and baseline is None:
                continue
            rows.append(
                {
                    "set": number,
                    "set_name": name,
                    "rows": n_rows,
                    "metric": metric,
                    "value": value,
                    "baseline": baseline,
                }
            )
    frame = pd.DataFrame(rows, columns=["set", "set_name", "rows", "metric", "value", "baseline"])
    return frame.sort_values(["metric", "rows", "set"], na_position="first").reset_index(drop=True)


def _clusters_list(source: Any) -> list[Any]:
    """Find the list of clusters in ``/segments``, ``GET /``, or a clusters.json document."""
    if isinstance(source, list):
        return source
    if not isinstance(source, dict):
        return []
    for key in ("clusters", "segments"):
        if key in source:
            return _clusters_list(source[key])
    for key in ("model_set", "loaded", "loaded_set", "model"):
        if isinstance(source.get(key), dict):
            found = _clusters_list(source[key])
            if found:
                return found
    # a dict keyed by cluster id: {"0": {...}, "1": {...}}
    if source and all(str(k).isdigit() and isinstance(v, dict) for k, v in source.items()):
        return [{"id": int(k), **v} for k, v in source.items()]
    return []


def _shares(raw: Any) -> dict[str, float]:
    if isinstance(raw, dict):
        return {str(k): float(v) for k, v in raw.items() if _number(v) is not None}
    return {}


def normalize_clusters(source: Any) -> list[dict[str, Any]]:
    """Clusters as ``{id, size, means, overall_means, device_shares, efficiency_rate,
    description}`` (clusters.json as the training stage writes it, or similar layouts)."""
    result = []
    for index, raw in enumerate(_clusters_list(source)):
        if not isinstance(raw, dict):
            continue
        cid = next(
            (
                raw[k]
                for k in ("cluster", "id", "cluster_id", "segment")
                if _number(raw.get(k)) is not None
            ),
            index,
        )
        means = raw.get("means") or raw.get("feature_means") or {}
        if not isinstance(means, dict):
            means = {}
        means = {f: float(means[f]) for f in NUMERIC_FEATURES if _number(means.get(f)) is not None}
        shares = _shares(
            raw.get("device_type_shares") or raw.get("device_shares") or raw.get("device_types")
        )
        overall = raw.get("overall_means") if isinstance(raw.get("overall_means"), dict) else {}
        result.append(
            {
                "id": int(cid),
                "overall_means": {
                    f: float(overall[f])
                    for f in NUMERIC_FEATURES
                    if _number(overall.get(f)) is not None
                },
                "size": int(_number(raw.get("size")) or _number(raw.get("count")) or 0),
                "means": means,
                "device_shares": shares,
                "efficiency_rate": _number(raw.get("efficiency_rate")),
                "description": str(raw.get("description") or ""),
            }
        )
    return sorted(result, key=lambda c: c["id"])


def overall_means(clusters: list[dict[str, Any]]) -> dict[str, float]:
    """The dataset-wide mean of each feature: as clusters.json states it, else the size-weighted
    mean of the cluster means (the same number)."""
    stated = next((c["overall_means"] for c in clusters if c.get("overall_means")), None)
    if stated:
        return stated
    totals: dict[str, float] = {}
    weights: dict[str, float] = {}
    for cluster in clusters:
        for feature, mean in cluster["means"].items():
            totals[feature] = totals.get(feature, 0.0) + mean * cluster["size"]
            weights[feature] = weights.get(feature, 0.0) + cluster["size"]
    return {f: totals[f] / weights[f] for f in totals if weights[f] > 0}


def profile_frame(cluster: dict[str, Any], overall: dict[str, float]) -> pd.DataFrame:
    """Per feature: the cluster's mean, the overall mean, and the difference in percent."""
    rows = []
    for feature in NUMERIC_FEATURES:
        if feature not in cluster["means"] or feature not in overall:
            continue
        mean, base = cluster["means"][feature], overall[feature]
        diff = (mean - base) / abs(base) * 100 if base else 0.0
        rows.append({"feature": feature, "segment": mean, "overall": base, "diff_pct": diff})
    return pd.DataFrame(rows, columns=["feature", "segment", "overall", "diff_pct"])


def device_mix_frame(cluster: dict[str, Any]) -> pd.DataFrame:
    shares = cluster["device_shares"]
    order = [d for d in DEVICE_TYPES if d in shares] + [d for d in shares if d not in DEVICE_TYPES]
    return pd.DataFrame({"device": order, "share": [shares[d] for d in order]})


def _first(source: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if source.get(key) not in (None, ""):
            return source[key]
    return None


def status_summary(body: dict[str, Any]) -> dict[str, Any]:
    """From ``GET /``: the loaded set's name, when it was trained and on how many rows."""
    places = [body]
    for key in ("model_set", "loaded", "loaded_set", "manifest", "model"):
        if isinstance(body.get(key), dict):
            places.append(body[key])
            if isinstance(body[key].get("manifest"), dict):
                places.append(body[key]["manifest"])
    name = created = rows = None
    for place in places:
        found = _first(place, ("model_set", "name", "set_name", "loaded_set"))
        name = name or (found if isinstance(found, str) else None)
        created = created or _first(place, ("created_at", "trained_at", "created"))
        rows = rows if rows is not None else row_count(place)
    return {"set": name, "created_at": created, "rows": rows}


def sets_table(manifests: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per set, newest first: name, rows, when, and each chart metric."""
    rows = []
    for manifest in manifests:
        number, name = set_label(manifest)
        row: dict[str, Any] = {
            "set": number,
            "set_name": name,
            "rows": row_count(manifest),
            "created_at": _first(manifest, ("created_at", "trained_at", "created")),
        }
        for metric, (model, names) in HISTORY_METRICS.items():
            row[metric] = find_metric(model_entry(manifest, model), names)[0]
        rows.append(row)
    return pd.DataFrame(rows)
