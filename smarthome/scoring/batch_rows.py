"""A set's rows and its held-out split without Spark, for the promotion gate and drift checks.

The rows are the batch files' rows that training keeps (``smarthome.training.batches``: the
record schema's types and ranges; a bad row is skipped), and the split is training's
``pmod(xxhash64(UserID, seed), 100) < test_percent`` (``smarthome.training.split``) computed
with the xxhash library: XXH64 of the long ``UserID`` with seed 42, then of the int ``seed``
with that hash as its seed, as Spark chains them. A test checks both against Spark on every
dataset row.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xxhash

from smarthome.contracts.records import DEVICE_TYPES, INT_COLUMNS, RANGES, RECORD_COLUMNS
from smarthome.errors import UserError

_MASK = (1 << 64) - 1
#: Spark's ``xxhash64(...)`` starts from this seed
SPARK_HASH_SEED = 42
_INT_TEXT = r"^[+-]?\d{1,18}$"


def _xxh64(data: bytes, seed: int) -> int:
    """XXH64 of ``data`` (the xxhash library) as Spark's signed long; Spark's ``hashLong`` and
    ``hashInt`` are XXH64 of the value's 8 or 4 little-endian bytes."""
    digest = xxhash.xxh64_intdigest(data, seed=seed & _MASK)
    return digest - (1 << 64) if digest >= 1 << 63 else digest


def held_out_mask(user_ids: Sequence[int] | np.ndarray, seed: int, test_percent: int) -> np.ndarray:
    """True for the held-out rows, exactly as training's ``held_out(seed, test_percent)``."""
    # F.lit(seed) is an int literal when it fits in 32 bits, else a long
    seed_bytes = struct.pack("<i" if -(2**31) <= seed < 2**31 else "<q", seed)
    hashed = [
        _xxh64(seed_bytes, _xxh64(struct.pack("<q", int(uid)), SPARK_HASH_SEED))
        for uid in np.asarray(user_ids, dtype=np.int64)
    ]
    return (np.asarray(hashed, dtype=np.int64) % 100) < test_percent  # numpy's % is pmod


def batch_paths(batch_dir: Path, names: Sequence[str]) -> list[Path]:
    """The paths of a set's batch files (its manifest's names); UserError names missing ones."""
    paths = [Path(batch_dir) / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise UserError(
            f"batch file(s) {', '.join(missing[:3])} missing from {batch_dir}: drift checks and "
            "the promotion gate read a set's batch files again (keep them, or retrain)"
        )
    return paths


def read_rows(files: Sequence[Path]) -> pd.DataFrame:
    """The valid rows of ``files`` in order, typed; the rows training would skip are dropped."""
    frames = []
    for path in files:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, on_bad_lines="skip", encoding="utf-8-sig"
        )
        frames.append(frame.reindex(columns=RECORD_COLUMNS))
    if not frames:
        return _typed(pd.DataFrame(columns=RECORD_COLUMNS))
    raw = pd.concat(frames, ignore_index=True).fillna("")
    valid = raw["DeviceType"].isin(DEVICE_TYPES)
    typed = {"DeviceType": raw["DeviceType"]}
    for column in RECORD_COLUMNS:
        if column == "DeviceType":
            continue
        text = raw[column].str.strip()
        value = pd.to_numeric(text, errors="coerce")
        ok = value.notna() & np.isfinite(value.astype(float))
        if column in INT_COLUMNS or column == "UserID":
            ok &= text.str.match(_INT_TEXT)
        low, high = RANGES.get(column, (None, None))
        if low is not None:
            ok &= value >= low
        if high is not None:
            ok &= value <= high
        valid &= ok.fillna(False)
        typed[column] = value
    return _typed(pd.DataFrame(typed)[valid.to_numpy()].reset_index(drop=True))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[RECORD_COLUMNS].copy()
    for column in RECORD_COLUMNS:
        if column == "DeviceType":
            out[column] = out[column].astype(str)
        elif column in INT_COLUMNS or column == "UserID":
            out[column] = out[column].astype(np.int64)
        else:
            out[column] = out[column].astype(float)
    return out


def split_rows(
    frame: pd.DataFrame, seed: int, test_percent: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held out) of ``frame`` by :func:`held_out_mask`."""
    mask = held_out_mask(frame["UserID"].to_numpy(), seed, test_percent)
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
