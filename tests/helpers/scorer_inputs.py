"""Inputs for the stream scorer's fast tests: records shaped like kafka-python's
ConsumerRecord, and a small rule-based set standing in for trained models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECORD = {
    "UserID": 7,
    "DeviceType": "Lights",
    "UsageHoursPerDay": 13.5,
    "EnergyConsumption": 2.25,
    "UserPreferences": 1,
    "MalfunctionIncidents": 2,
    "DeviceAgeMonths": 30,
    "SmartHomeEfficiency": 1,
}
NOW_MS = 1_800_000_000_000


@dataclass
class Message:
    """The fields of a kafka-python ConsumerRecord the scorer reads."""

    value: bytes | None
    offset: int = 0
    partition: int = 1
    topic: str = "smart_home_stream"
    key: bytes | None = b"7"
    timestamp: int = NOW_MS - 40


class RuleSet:
    """A served set's scoring methods as simple rules: efficient above 12 h/day, with a
    probability and a malfunction count read from the record (so tests choose them)."""

    name = "20260101T000000Z_set0001"

    def predict_efficiency(self, rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
        return [(int(r["UsageHoursPerDay"] > 12), r["EnergyConsumption"] / 10) for r in rows]

    def predict_malfunction(self, rows: list[dict[str, Any]]) -> list[float]:
        return [float(r["DeviceAgeMonths"]) / 10 for r in rows]

    def segment(self, rows: list[dict[str, Any]]) -> list[int]:
        return [r["UserPreferences"] for r in rows]
