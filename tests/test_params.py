"""Run parameter validation and calling hours."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from callfilter.params import ParamError, next_window_start, validate_params


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "batchid"),
        ({"batchid": ""}, "batchid"),
        ({"batchid": "x" * 65}, "batchid"),
        ({"batchid": "B", "batch_size": 0}, "batch_size"),
        ({"batchid": "B", "batch_size": 1001}, "batch_size"),
        ({"batchid": "B", "batch_size": "many"}, "batch_size"),
        ({"batchid": "B", "max_attempts": 4}, "max_attempts"),
        ({"batchid": "B", "calling_hours": "9-21"}, "calling_hours"),
        ({"batchid": "B", "calling_hours": "25:00-21:00"}, "calling_hours"),
        ({"batchid": "B", "calling_hours": "09:00-09:00"}, "calling_hours"),
        ({"batchid": "B", "filter_task_id": "seven"}, "filter_task_id"),
    ],
)
def test_bad_params_name_the_field(raw, field):
    with pytest.raises(ParamError, match=f"^{field}:"):
        validate_params(raw)


def test_defaults():
    params = validate_params({"batchid": "B1"})
    assert (params.batch_size, params.max_attempts, params.calling_hours, params.creator) == (
        1000, 1, "09:00-21:00", "airflow",
    )  # fmt: skip


UTC = ZoneInfo("UTC")


def test_calling_window():
    assert next_window_start("", datetime(2026, 1, 1, 3, tzinfo=UTC)) is None
    assert next_window_start("09:00-21:00", datetime(2026, 1, 1, 12, tzinfo=UTC)) is None
    assert next_window_start("09:00-21:00", datetime(2026, 1, 1, 7, tzinfo=UTC)) == datetime(
        2026, 1, 1, 9, tzinfo=UTC
    )
    assert next_window_start("09:00-21:00", datetime(2026, 1, 1, 21, tzinfo=UTC)) == datetime(
        2026, 1, 2, 9, tzinfo=UTC
    )
    # A window across midnight.
    assert next_window_start("22:00-06:00", datetime(2026, 1, 1, 23, tzinfo=UTC)) is None
    assert next_window_start("22:00-06:00", datetime(2026, 1, 1, 12, tzinfo=UTC)) == datetime(
        2026, 1, 1, 22, tzinfo=UTC
    )
