"""Reading the dataset CSV into validated records, with the CSV line number of every bad row.

The CSV holds text; each column is converted to its native type (int/float/str) before the
shared schema (``contracts.records``) validates it, so a bad cell is reported exactly as the
consumer and the API would report it, e.g. ``line 7: UsageHoursPerDay: must be <= 24``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smarthome.contracts.records import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    RECORD_COLUMNS,
    RecordError,
    validate_record,
)
from smarthome.errors import UserError


@dataclass
class Dataset:
    """Valid records in file order, and ``(line number, reason)`` for every invalid row."""

    records: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)


def _convert(column: str, text: str) -> Any:
    """The cell as its native type; left as text when it does not parse (the schema says why)."""
    text = text.strip()
    try:
        if column in INT_COLUMNS:
            return int(text)
        if column in FLOAT_COLUMNS:
            return float(text)
    except ValueError:
        return text
    return text


def iter_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line, record, None)`` for a valid row, ``(line, None, reason)`` for an invalid one."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UserError(f"dataset {path} is not a file; pass the CSV with --dataset")
    if not path.is_file():
        raise UserError(
            f"dataset not found: {path}; copy smart_home_device_usage_data.csv there"
            " or pass --dataset / set DATASET_PATH"
        )
    try:
        yield from _read(path)
    except UnicodeDecodeError as exc:
        raise UserError(f"dataset {path} is not a UTF-8 CSV file ({exc.reason})") from None
    except csv.Error as exc:
        raise UserError(f"dataset {path} is not a readable CSV file ({exc})") from None


def _read(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        missing = [c for c in RECORD_COLUMNS if c not in header]
        if missing:
            raise UserError(
                f"dataset {path} lacks column(s) {', '.join(missing)};"
                f" expected a header with {', '.join(RECORD_COLUMNS)}"
            )
        index = {c: header.index(c) for c in RECORD_COLUMNS}
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue  # blank line
            if len(cells) != len(header):
                yield line, None, f"has {len(cells)} fields, the header has {len(header)}"
                continue
            raw = {c: _convert(c, cells[i]) for c, i in index.items() if cells[i].strip()}
            try:
                yield line, validate_record(raw), None
            except RecordError as exc:
                yield line, None, str(exc)


def read_dataset(path: Path) -> Dataset:
    """The whole dataset (5,403 rows: small enough to hold, validate once, replay in loops)."""
    data = Dataset()
    for line, record, reason in iter_rows(path):
        if record is not None:
            data.records.append(record)
        else:
            data.invalid.append((line, reason or "invalid"))
    return data
