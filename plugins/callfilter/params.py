"""The call_filter run parameters: validation with messages that name the field, and calling hours."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_BATCH_SIZE = 1000
DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_CALLING_HOURS = "09:00-21:00"
TIMEZONE_ENV = "CALLFILTER_TIMEZONE"
_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class ParamError(ValueError):
    """A run parameter is wrong; the message names the field."""


@dataclass(frozen=True)
class RunParams:
    batchid: str
    creator: str = "airflow"
    categoryid: str | None = None
    tasktype: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    calling_hours: str = DEFAULT_CALLING_HOURS
    filter_task_id: int | None = None


def _int(raw: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = raw.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParamError(f"{name}: must be an integer from {low} to {high}, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ParamError(f"{name}: must be an integer from {low} to {high}, got {value!r}") from None
    if not low <= number <= high:
        raise ParamError(f"{name}: must be an integer from {low} to {high}, got {number}")
    return number


def _text(raw: Mapping[str, Any], name: str, default: str | None, max_len: int = 64) -> str | None:
    value = raw.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParamError(f"{name}: must be a string, got {value!r}")
    if len(value) > max_len:
        raise ParamError(f"{name}: at most {max_len} characters, got {len(value)}")
    return value


def validate_params(raw: Mapping[str, Any]) -> RunParams:
    """Check the run's params; raise ParamError naming the first bad field."""
    batchid = raw.get("batchid")
    if not isinstance(batchid, str) or not batchid.strip() or len(batchid) > 64:
        raise ParamError(f"batchid: must be a string of 1-64 characters, got {batchid!r}")
    hours = raw.get("calling_hours", DEFAULT_CALLING_HOURS)
    if hours is None:
        hours = ""
    if (
        not isinstance(hours, str)
        or (hours and not _HOURS_RE.match(hours))
        or (hours and hours[:5] == hours[6:])
    ):
        raise ParamError(
            f'calling_hours: must be "HH:MM-HH:MM" (start differs from end) or "", got {hours!r}'
        )
    creator = _text(raw, "creator", "airflow") or "airflow"
    return RunParams(
        batchid=batchid,
        creator=creator,
        categoryid=_text(raw, "categoryid", None),
        tasktype=_text(raw, "tasktype", None),
        batch_size=_int(raw, "batch_size", DEFAULT_BATCH_SIZE, 1, 1000) or DEFAULT_BATCH_SIZE,
        max_attempts=_int(raw, "max_attempts", DEFAULT_MAX_ATTEMPTS, 1, 3) or DEFAULT_MAX_ATTEMPTS,
        calling_hours=hours,
        filter_task_id=_int(raw, "filter_task_id", None, 1, 2**62),
    )


def timezone() -> ZoneInfo:
    """The time zone of calling hours: CALLFILTER_TIMEZONE, else Airflow's default_timezone."""
    name = os.environ.get(TIMEZONE_ENV)
    if not name:
        try:
            from airflow.configuration import conf

            name = conf.get("core", "default_timezone", fallback="UTC")
        except Exception:
            name = "UTC"
    return ZoneInfo("UTC" if name in ("utc", "system") else name)


def next_window_start(calling_hours: str, now: datetime) -> datetime | None:
    """None when `now` is inside the calling window (or there is none); else when the window next opens."""
    if not calling_hours:
        return None
    start_h, start_m, end_h, end_m = (int(x) for x in _HOURS_RE.match(calling_hours).groups())  # type: ignore[union-attr]
    start, end = time(start_h, start_m), time(end_h, end_m)
    local = now.astimezone(now.tzinfo)
    clock = local.time()
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if inside:
        return None
    opens = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opens <= local:
        opens += timedelta(days=1)
    return opens
