"""Synthetic records at any size: dataset rows resampled with fresh UserIDs and small noise.

Each synthetic record copies a random dataset row (so the relationships the models learn
are kept), gives it a new UserID above the dataset's, and nudges the continuous columns by a
little noise that stays within the schema's ranges. Deterministic for a seed, and a generator:
N records are streamed, never held in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

USAGE_SD = 0.25  # hours/day
ENERGY_REL_SD = 0.03  # 3 % of the row's kWh/day
AGE_STEP = 1  # months, uniform in [-1, 1]


def synthetic_records(
    base: list[dict[str, Any]], count: int, seed: int = 42
) -> Iterator[dict[str, Any]]:
    """``count`` valid records resampled from ``base`` (validated rows), reproducible by seed."""
    if not base:
        return
    rng = random.Random(seed)
    first_id = max(r["UserID"] for r in base) + 1
    pick, gauss, randint = rng.randrange, rng.gauss, rng.randint
    size = len(base)
    for i in range(count):
        row = base[pick(size)]
        usage = min(24.0, max(0.0, row["UsageHoursPerDay"] + gauss(0.0, USAGE_SD)))
        energy = max(0.0, row["EnergyConsumption"] * (1.0 + gauss(0.0, ENERGY_REL_SD)))
        age = max(0, row["DeviceAgeMonths"] + randint(-AGE_STEP, AGE_STEP))
        yield {
            "UserID": first_id + i,
            "DeviceType": row["DeviceType"],
            "UsageHoursPerDay": usage,
            "EnergyConsumption": energy,
            "UserPreferences": row["UserPreferences"],
            "MalfunctionIncidents": row["MalfunctionIncidents"],
            "DeviceAgeMonths": age,
            "SmartHomeEfficiency": row["SmartHomeEfficiency"],
        }
