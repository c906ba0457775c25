"""The held-out split of a set's rows: a hash of ``UserID``, not ``randomSplit``.

``pmod(xxhash64(UserID, seed), 100) < test_percent`` is held out. It does not depend on how
Spark partitioned the rows, so a test recomputes it exactly, and a device stays on the same
side in every cumulative set, so the learning curve compares like with like.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def held_out(seed: int, test_percent: int) -> Column:
    """True for the rows of the held-out split (a pure function of UserID and seed)."""
    return F.pmod(F.xxhash64(F.col("UserID"), F.lit(seed)), F.lit(100)) < F.lit(test_percent)


def split(df: DataFrame, seed: int, test_percent: int) -> tuple[DataFrame, DataFrame]:
    """(train, test) of ``df`` by :func:`held_out`."""
    flag = held_out(seed, test_percent)
    return df.where(~flag), df.where(flag)
