"""Column types and ranges come from the one record schema, for every stage that needs them."""

from __future__ import annotations

import pytest

from smarthome.contracts.records import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    RANGES,
    RECORD_COLUMNS,
    RecordError,
    validate_record,
)

ROW = {
    "UserID": 1,
    "DeviceType": "Camera",
    "UsageHoursPerDay": 1.5,
    "EnergyConsumption": 2.5,
    "UserPreferences": 1,
    "MalfunctionIncidents": 0,
    "DeviceAgeMonths": 12,
    "SmartHomeEfficiency": 1,
}


def test_every_column_but_the_device_type_is_an_int_or_a_float() -> None:
    assert INT_COLUMNS == [
        "UserID", "UserPreferences", "MalfunctionIncidents", "DeviceAgeMonths",
        "SmartHomeEfficiency",
    ]  # fmt: skip
    assert FLOAT_COLUMNS == ["UsageHoursPerDay", "EnergyConsumption"]
    assert sorted(INT_COLUMNS + FLOAT_COLUMNS + ["DeviceType"]) == sorted(RECORD_COLUMNS)
    assert RANGES["UsageHoursPerDay"] == (0, 24) and RANGES["EnergyConsumption"] == (0, None)
    assert RANGES["UserPreferences"] == (0, 1) and RANGES["SmartHomeEfficiency"] == (0, 1)


@pytest.mark.parametrize("column", list(RANGES))
def test_ranges_are_the_ones_the_schema_enforces(column: str) -> None:
    low, high = RANGES[column]
    step = 1 if column in INT_COLUMNS else 0.5
    for edge in (low, high):
        if edge is not None:
            validate_record({**ROW, column: type(ROW[column])(edge)})
    with pytest.raises(RecordError, match=column):
        validate_record({**ROW, column: type(ROW[column])(low - step)})
    if high is not None:
        with pytest.raises(RecordError, match=column):
            validate_record({**ROW, column: type(ROW[column])(high + step)})


def test_stages_use_the_schema_lists_not_copies() -> None:
    from smarthome.api import validation
    from smarthome.ingest import dataset
    from smarthome.training import batches
    from smarthome.ui import bulk

    assert dataset.INT_COLUMNS is INT_COLUMNS and dataset.FLOAT_COLUMNS is FLOAT_COLUMNS
    assert batches.INT_COLUMNS is INT_COLUMNS and batches.RANGES is RANGES
    assert validation.INT_COLUMNS is INT_COLUMNS and validation.FLOAT_COLUMNS is FLOAT_COLUMNS
    assert bulk.FLOAT_COLUMNS is FLOAT_COLUMNS
