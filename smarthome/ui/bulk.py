"""Bulk predictions: a CSV of devices in, one table with the three predictions out.

Rows are checked with the project's record schema first, so one bad row gets its own error
message in the table instead of failing the whole file; the valid rows go to the API as JSON
lists in chunks (one request per endpoint per chunk).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd

from smarthome.contracts.records import (
    DEVICE_FEATURES,
    FLOAT_COLUMNS,
    DeviceInput,
    RecordError,
    validate_record,
)
from smarthome.ui.client import ApiClient

MAX_ROWS = 20_000
CHUNK = 200  # rows per API request: well under any sensible API batch limit
RESULT_COLUMNS = [
    "predicted_efficiency_class",
    "probability_of_predicted_class",
    "predicted_malfunctions",
    "device_segment_id",
    "error",
]


class BulkInputError(ValueError):
    """The file as a whole is unusable; ``key``/``values`` select the translated message."""

    def __init__(self, key: str, **values: Any) -> None:
        self.key, self.values = key, values
        super().__init__(f"{key}: {values}")


def read_devices(raw: bytes, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """The uploaded CSV as strings (so the schema, not pandas, decides what a number is)."""
    try:
        frame = pd.read_csv(
            io.BytesIO(raw), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BulkInputError("bulk_unreadable", reason=str(exc).splitlines()[0][:200]) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in DEVICE_FEATURES if c not in frame.columns]
    if missing:
        raise BulkInputError(
            "bulk_missing", columns=", ".join(missing), required=", ".join(DEVICE_FEATURES)
        )
    if frame.empty:
        raise BulkInputError("bulk_empty")
    if len(frame) > max_rows:
        raise BulkInputError("bulk_too_many", rows=len(frame), limit=max_rows)
    return frame


def _convert(field: str, text: str) -> Any:
    """A CSV cell as the JSON type the schema expects (bad cells are passed on unchanged)."""
    text = text.strip()
    if field == "DeviceType" or text == "":
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if field in FLOAT_COLUMNS:
        return number
    return int(number) if number.is_integer() else number


def device_record(row: pd.Series) -> dict[str, Any]:
    """A validated device dict from one CSV row, or RecordError naming the bad fields."""
    values = {f: _convert(f, row[f]) for f in DEVICE_FEATURES}
    return validate_record(values, DeviceInput)


@dataclass
class BulkResult:
    table: pd.DataFrame
    predicted: int
    rejected: int


def predict_bulk(client: ApiClient, frame: pd.DataFrame, chunk: int = CHUNK) -> BulkResult:
    """The input table with the three predictions (or an error) added to every row.

    Raises ApiError when the API cannot be reached or answers with an error.
    """
    records: list[dict[str, Any]] = []
    positions: list[int] = []
    errors = [""] * len(frame)
    for pos, (_, row) in enumerate(frame.iterrows()):
        try:
            records.append(device_record(row))
            positions.append(pos)
        except RecordError as exc:
            errors[pos] = "; ".join(exc.details)
    out: dict[str, list[Any]] = {c: [None] * len(frame) for c in RESULT_COLUMNS[:-1]}
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        without_label = [{k: v for k, v in r.items() if k != "MalfunctionIncidents"} for r in part]
        eff = client.predict_efficiency(part)
        mal = client.predict_malfunction(without_label)
        seg = client.get_device_segment(part)
        for i, pos in enumerate(positions[start : start + chunk]):
            out["predicted_efficiency_class"][pos] = eff[i].predicted_efficiency_class
            out["probability_of_predicted_class"][pos] = eff[i].probability_of_predicted_class
            out["predicted_malfunctions"][pos] = mal[i].predicted_malfunctions
            out["device_segment_id"][pos] = seg[i].device_segment_id
    answers = pd.DataFrame(
        {
            column: pd.array(
                values, dtype="Float64" if "prob" in column or "malf" in column else "Int64"
            )
            for column, values in out.items()
        },
        index=frame.index,
    ).assign(error=errors)
    # UserID (if any), then the answers, then the rest of the upload: answers visible at once
    ids = [c for c in ("UserID",) if c in frame.columns]
    rest = frame.drop(columns=ids + [c for c in RESULT_COLUMNS if c in frame.columns])
    table = pd.concat([frame[ids], answers, rest], axis=1)
    return BulkResult(table, len(records), len(frame) - len(records))


def template_csv() -> bytes:
    """An example upload: the dataset's device columns with two rows."""
    rows = [
        ["Thermostat", 6.5, 3.2, 1, 0, 24],
        ["Camera", 14.0, 8.75, 0, 3, 50],
    ]
    return pd.DataFrame(rows, columns=DEVICE_FEATURES).to_csv(index=False).encode()
