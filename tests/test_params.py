"""Run parameter validation and calling hours."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callfilter.params import (
    ParamError,
    calling_window,
    send_wait,
    timezone,
    validate_params,
    vendor_cap,
    window_closes,
)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "batchid"),
        ({"batchid": ""}, "batchid"),
        ({"batchid": "x" * 65}, "batchid"),
        ({"batchid": "   "}, "batchid"),
        ({"batchid": "\x00"}, "batchid"),
        ({"batchid": "B\x01"}, "batchid"),
        ({"batchid": "B\n"}, "batchid"),
        ({"batchid": 7}, "batchid"),
        ({"batchid": "B", "creator": "ops\x00"}, "creator"),
        ({"batchid": "B", "calling_hours": "09:00-21:00\n"}, "calling_hours"),
        ({"batchid": "B", "calling_hours": "\n"}, "calling_hours"),
        ({"batchid": "B", "creator": "x" * 65}, "creator"),
        ({"batchid": "B", "categoryid": "x" * 65}, "categoryid"),
        ({"batchid": "B", "tasktype": 7}, "tasktype"),
        ({"batchid": "B", "batch_size": 0}, "batch_size"),
        ({"batchid": "B", "batch_size": 1001}, "batch_size"),
        ({"batchid": "B", "batch_size": "many"}, "batch_size"),
        ({"batchid": "B", "max_attempts": 0}, "max_attempts"),
        ({"batchid": "B", "max_attempts": 4}, "max_attempts"),
        ({"batchid": "B", "calling_hours": "9-21"}, "calling_hours"),
        ({"batchid": "B", "calling_hours": "25:00-21:00"}, "calling_hours"),
        ({"batchid": "B", "calling_hours": "09:00-09:00"}, "calling_hours"),
        ({"batchid": "B", "calling_hours": None}, "calling_hours"),
        ({"batchid": "B", "filter_task_id": "seven"}, "filter_task_id"),
        ({"batchid": "B", "filter_task_id": 0}, "filter_task_id"),
    ],
)
def test_bad_params_name_the_field(raw, field):
    """validate_params checks the DAG's Param schema (RUN_PARAMS), as Airflow does when it creates a run."""
    with pytest.raises(ParamError, match=f"^{field}:"):
        validate_params(raw)


@pytest.mark.parametrize(
    "batchid", ["B'1\"", "B; drop table case_tel; --", "../../etc/passwd", "批次 7", "x" * 64]
)
def test_hostile_but_printable_batchids_are_taken_as_text(batchid):
    # Stored through parameters only and never part of a file name: quotes, semicolons and ../ are data.
    assert validate_params({"batchid": batchid}).batchid == batchid


def test_defaults():
    params = validate_params({"batchid": "B1"})
    assert (params.batch_size, params.max_attempts, params.calling_hours, params.creator) == (
        1000, 1, "09:00-21:00", "airflow",
    )  # fmt: skip
    assert validate_params({"batchid": "B1", "creator": ""}).creator == "airflow"
    assert validate_params({"batchid": "B1", "calling_hours": "22:00-06:00"}).calling_hours == "22:00-06:00"


UTC = ZoneInfo("UTC")


def test_calling_window():
    assert send_wait("", datetime(2026, 1, 1, 3, tzinfo=UTC), 0) is None
    assert send_wait("09:00-21:00", datetime(2026, 1, 1, 12, tzinfo=UTC), 0) is None
    assert send_wait("09:00-21:00", datetime(2026, 1, 1, 7, tzinfo=UTC), 0) == datetime(
        2026, 1, 1, 9, tzinfo=UTC
    )
    assert send_wait("09:00-21:00", datetime(2026, 1, 1, 21, tzinfo=UTC), 0) == datetime(
        2026, 1, 2, 9, tzinfo=UTC
    )
    # A window across midnight.
    assert send_wait("22:00-06:00", datetime(2026, 1, 1, 23, tzinfo=UTC), 0) is None
    assert send_wait("22:00-06:00", datetime(2026, 1, 1, 12, tzinfo=UTC), 0) == datetime(
        2026, 1, 1, 22, tzinfo=UTC
    )


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_calling_windows_including_those_over_midnight():
    assert calling_window("", at(3)) is None
    assert calling_window("09:00-21:00", at(12)) == (at(9), at(21))
    assert calling_window("09:00-21:00", at(22)) == (at(9) + timedelta(days=1), at(21) + timedelta(days=1))
    assert calling_window("22:00-06:00", at(23)) == (at(22), at(6) + timedelta(days=1))
    assert calling_window("22:00-06:00", at(2)) == (at(22) - timedelta(days=1), at(6))
    # Open all day but 12:30-12:31: the window closes for a minute and opens again.
    assert calling_window("12:31-12:30", at(12, 20)) == (at(12, 31) - timedelta(days=1), at(12, 30))
    assert calling_window("12:31-12:30", at(12, 30)) == (at(12, 31), at(12, 30) + timedelta(days=1))
    assert window_closes("09:00-21:00", at(12)) == at(21) and window_closes("", at(12)) is None


def test_a_vendor_task_is_not_created_when_the_window_closes_before_it_could_dial():
    assert send_wait("", at(3), 3600) is None
    assert send_wait("09:00-21:00", at(7), 60) == at(9)
    assert send_wait("09:00-21:00", at(20, 30), 20 * 60) is None
    assert send_wait("09:00-21:00", at(20, 50), 20 * 60) == at(9) + timedelta(days=1)
    # A window shorter than the whole dial time only has to be open.
    assert send_wait("09:00-09:10", at(9, 0), 3600) is None


def test_the_calling_hours_time_zone(monkeypatch):
    monkeypatch.delenv("CALLFILTER_TIMEZONE", raising=False)
    assert timezone() == ZoneInfo("Asia/Shanghai")
    monkeypatch.setenv("CALLFILTER_TIMEZONE", "system")
    assert timezone().utcoffset(datetime.now()) == datetime.now().astimezone().utcoffset()
    monkeypatch.setenv("CALLFILTER_TIMEZONE", "Europe/Berlin")
    assert timezone() == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("name", "raw", "error"),
    [
        ("CALLFILTER_VENDOR_CAP", "0", "CALLFILTER_VENDOR_CAP must be a whole number of at least 1, got '0'"),
        (
            "CALLFILTER_VENDOR_CAP",
            "2.5",
            "CALLFILTER_VENDOR_CAP must be a whole number of at least 1, got '2.5'",
        ),
        (
            "CALLFILTER_QUERY_TIMEOUT",
            "soon",
            "CALLFILTER_QUERY_TIMEOUT must be a number of at least 1, got 'soon'",
        ),
        ("CALLFILTER_FILES_RETENTION_DAYS", "nan", "must be a number of at least 0, got 'nan'"),
        ("CALLFILTER_POLLER_MAX_RUNS", "-3", "must be a whole number of at least 1, got '-3'"),
    ],
)
def test_a_bad_number_setting_is_named_with_what_it_must_be(monkeypatch, name, raw, error):
    from callfilter import housekeeping, operators, polling

    read = {
        "CALLFILTER_VENDOR_CAP": vendor_cap,
        "CALLFILTER_QUERY_TIMEOUT": operators.query_timeout,
        "CALLFILTER_FILES_RETENTION_DAYS": housekeeping.retention,
        "CALLFILTER_POLLER_MAX_RUNS": polling.max_runs,
    }[name]
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=re.escape(error)):
        read()
    monkeypatch.setenv(name, "")  # empty is the default
    assert read()
