"""A set's rows and its held-out split without Spark, for the promotion gate and drift checks.

The rows are the batch files' rows that training keeps (``smarthome.training.batches``: the
record schema's types and ranges; a bad row is skipped), and the split is training's
``pmod(xxhash64(UserID, seed), 100) < test_percent`` (``smarthome.training.split``) computed
with numpy: Spark's XXH64 of the long ``UserID`` with seed 42, then of the int ``seed`` with
that hash as its seed. A test checks both against Spark on every dataset row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from smarthome.contracts.records import DEVICE_TYPES, INT_COLUMNS, RANGES, RECORD_COLUMNS
from smarthome.errors import UserError

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_MASK = (1 << 64) - 1
#: Spark's ``xxhash64(...)`` starts from this seed
SPARK_HASH_SEED = 42
_INT_TEXT = r"^[+-]?\d{1,18}$"


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    return h ^ (h >> np.uint64(32))


def _hash_long(values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Spark's ``XXH64.hashLong`` (uint64 arithmetic wraps as Java's long does)."""
    h = seeds + _P5 + np.uint64(8)
    h = h ^ (_rotl(values * _P2, 31) * _P1)
    return _fmix(_rotl(h, 27) * _P1 + _P4)


def _hash_int(value: int, seeds: np.ndarray) -> np.ndarray:
    """Spark's ``XXH64.hashInt``."""
    h = seeds + _P5 + np.uint64(4)
    h = h ^ np.uint64(((value & 0xFFFFFFFF) * int(_P1)) & _MASK)
    return _fmix(_rotl(h, 23) * _P2 + _P3)


def held_out_mask(user_ids: Sequence[int] | np.ndarray, seed: int, test_percent: int) -> np.ndarray:
    """True for the held-out rows, exactly as training's ``held_out(seed, test_percent)``."""
    ids = np.asarray(user_ids, dtype=np.int64).astype(np.uint64)
    first = _hash_long(ids, np.full(ids.shape, np.uint64(SPARK_HASH_SEED)))
    if -(2**31) <= seed < 2**31:  # F.lit(seed) is an int literal
        hashed = _hash_int(seed, first)
    else:
        hashed = _hash_long(np.full(ids.shape, np.uint64(seed & _MASK)), first)
    return (hashed.view(np.int64) % 100) < test_percent  # numpy's % is Spark's pmod here


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
