"""The call_filter run parameters: validation with messages that name the field, and calling hours."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from callfilter.errors import ParamError

DEFAULT_BATCH_SIZE = 1000
DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_CALLING_HOURS = "09:00-21:00"
TIMEZONE_ENV = "CALLFILTER_TIMEZONE"
DEFAULT_TIMEZONE = "Asia/Shanghai"
_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


VENDOR_CAP_ENV = "CALLFILTER_VENDOR_CAP"
DEFAULT_VENDOR_CAP = 5


def vendor_cap() -> int:
    """How many unfinished vendor tasks the pipeline may have at once (CALLFILTER_VENDOR_CAP, default 5: the
    vendor's own limit per app). Every component reads it: the DAG lets as many sends wait for a slot."""
    raw = os.environ.get(VENDOR_CAP_ENV) or str(DEFAULT_VENDOR_CAP)
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{VENDOR_CAP_ENV} must be a whole number of at least 1, got {raw!r}")
    return cap


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


def check_calling_hours(hours: Any) -> str:
    """The calling hours as given ("" for None); ParamError naming the field when malformed."""
    if hours is None:
        return ""
    if (
        not isinstance(hours, str)
        or (hours and not _HOURS_RE.match(hours))
        or (hours and hours[:5] == hours[6:])
    ):
        raise ParamError(
            f'calling_hours: must be "HH:MM-HH:MM" (start differs from end) or "", got {hours!r}'
        )
    return hours


def validate_params(raw: Mapping[str, Any]) -> RunParams:
    """Check the run's params; raise ParamError naming the first bad field."""
    batchid = raw.get("batchid")
    if not isinstance(batchid, str) or not batchid.strip() or len(batchid) > 64:
        raise ParamError(f"batchid: must be a string of 1-64 characters, got {batchid!r}")
    hours = check_calling_hours(raw.get("calling_hours", DEFAULT_CALLING_HOURS))
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


def timezone() -> tzinfo:
    """The time zone of calling hours: CALLFILTER_TIMEZONE (default Asia/Shanghai; "system" is this machine's)."""
    name = os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE
    if name.lower() == "system":
        return datetime.now().astimezone().tzinfo or UTC
    return ZoneInfo(name)


def _bounds(calling_hours: str) -> tuple[time, time]:
    match = _HOURS_RE.match(calling_hours)
    if match is None:
        raise ParamError(f'calling_hours: must be "HH:MM-HH:MM" or "", got {calling_hours!r}')
    start_h, start_m, end_h, end_m = (int(x) for x in match.groups())
    return time(start_h, start_m), time(end_h, end_m)


def calling_window(calling_hours: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The calling window that holds `now`, else the next one, as (opens, closes) in now's time zone.

    None when there are no calling hours. A window whose end is before its start runs over midnight.
    """
    if not calling_hours:
        return None
    start, end = _bounds(calling_hours)
    tz = now.tzinfo
    today = now.date()

    def at(day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tz)

    if start < end:
        if now < at(today, end):
            return at(today, start), at(today, end)
        tomorrow = today + timedelta(days=1)
        return at(tomorrow, start), at(tomorrow, end)
    if now < at(today, end):
        return at(today - timedelta(days=1), start), at(today, end)
    return at(today, start), at(today + timedelta(days=1), end)


def send_wait(calling_hours: str, now: datetime, dial_seconds: float) -> datetime | None:
    """When a vendor task expected to dial for `dial_seconds` may be created: None for now, else a time.

    Not in the last part of a window that is shorter than the expected dial time (a window shorter than
    the whole dial time only has to be open).
    """
    window = calling_window(calling_hours, now)
    if window is None:
        return None
    opens, closes = window
    if opens > now:
        return opens
    needed = min(dial_seconds, (closes - opens).total_seconds())
    if (closes - now).total_seconds() >= needed:
        return None
    return calling_window(calling_hours, closes)[0]  # type: ignore[index]


def window_closes(calling_hours: str, now: datetime) -> datetime | None:
    """When the calling window that holds `now` closes (None without calling hours)."""
    window = calling_window(calling_hours, now)
    return window[1] if window else None
