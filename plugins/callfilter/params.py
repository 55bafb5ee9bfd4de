"""The call_filter run parameters (their JSON schema, the DAG's `Param`s) and calling hours."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from callfilter.errors import ParamError

TIMEZONE_ENV = "CALLFILTER_TIMEZONE"
DEFAULT_TIMEZONE = "Asia/Shanghai"

# "HH:MM-HH:MM" whose start differs from its end, or "" for no calling hours.
# "(?!\n)$": the end of the text, not a final newline before it (JSON Schema's patterns run as Python's
# re.search here, where "$" also matches before a trailing "\n").
CALLING_HOURS_PATTERN = r"^(?!\n)$|^(?!(\d\d:\d\d)-\1$)([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d(?!\n)$"
# Printable text: no control character (NUL cannot be stored at all), at least one non-blank for batchid.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*(?!\n)$"
BATCHID_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*(?!\n)$"

# The one definition of the run parameters: each is the JSON schema of a `Param` of the call_filter DAG
# (`default` and `description` as Param takes them). Airflow checks a run's conf against them when it creates
# the run, and again when a task starts. The call_filter_task rows that the business system writes itself
# are held to the same limits by the CHECK constraints of include/sql/schema.sql.
RUN_PARAMS: dict[str, dict[str, Any]] = {
    "batchid": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": BATCHID_PATTERN,
        "description": "the case batch to screen",
    },
    "creator": {
        "default": "airflow",
        "type": "string",
        "maxLength": 64,
        "pattern": TEXT_PATTERN,
        "description": "who asked; names the user's files",
    },
    "categoryid": {
        "default": None,
        "type": ["null", "string"],
        "maxLength": 64,
        "description": "copied to call_filter_task",
    },
    "tasktype": {
        "default": None,
        "type": ["null", "string"],
        "maxLength": 64,
        "description": "copied to call_filter_task",
    },
    "batch_size": {
        "default": 1000,
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "description": "numbers per vendor task",
    },
    "max_attempts": {
        "default": 1,
        "type": "integer",
        "minimum": 1,
        "maximum": 3,
        "description": "dial attempts per number",
    },
    "calling_hours": {
        "default": "09:00-21:00",
        "type": "string",
        "pattern": CALLING_HOURS_PATTERN,
        "description": '"HH:MM-HH:MM" in the configured time zone, or "" for none; sending waits for it',
    },
    "filter_task_id": {
        "default": None,
        "type": ["null", "integer"],
        "minimum": 1,
        "description": "run an already registered task",
    },
}


def env_number(name: str, default: float | None, minimum: float = 0, whole: bool = False) -> Any:
    """A number setting from the environment (empty or unset: `default`); ValueError naming the setting when
    it is not a number (`whole`: a whole number) of at least `minimum`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum or (whole and value != int(value)):
        kind = "whole number" if whole else "number"
        raise ValueError(f"{name} must be a {kind} of at least {minimum:g}, got {raw!r}")
    return int(value) if whole else value


VENDOR_CAP_ENV = "CALLFILTER_VENDOR_CAP"
DEFAULT_VENDOR_CAP = 5


def vendor_cap() -> int:
    """How many unfinished vendor tasks the pipeline may have at once (CALLFILTER_VENDOR_CAP, default 5: the
    vendor's own limit per app). Every component reads it: the DAG lets as many sends wait for a slot."""
    return env_number(VENDOR_CAP_ENV, DEFAULT_VENDOR_CAP, 1, whole=True)


TRIGGERER_VENDOR_RATE_ENV = "CALLFILTER_TRIGGERER_VENDOR_RATE"
DEFAULT_TRIGGERER_VENDOR_RATE = 10.0


def triggerer_vendor_rate() -> float:
    """Vendor requests per second one triggerer process may start (CALLFILTER_TRIGGERER_VENDOR_RATE, default
    10, half the vendor's 20 per app; 0 = no limit). With N triggerers, set it to the limit / N or below."""
    return env_number(TRIGGERER_VENDOR_RATE_ENV, DEFAULT_TRIGGERER_VENDOR_RATE, 0)


DEPLOYMENT_ENV = "CALLFILTER_DEPLOYMENT"
DEPLOYMENT_RE = re.compile(r"[A-Za-z0-9]{1,16}")


def deployment() -> str:
    """The deployment's name in the vendor's request ids (CALLFILTER_DEPLOYMENT, default none): staging and
    production sharing one vendor app must each set their own, or their request ids collide."""
    name = os.environ.get(DEPLOYMENT_ENV, "")
    if name and not DEPLOYMENT_RE.fullmatch(name):
        raise ValueError(f"{DEPLOYMENT_ENV} must be 1-16 letters or digits, got {name!r}")
    return name


@dataclass(frozen=True)
class RunParams:
    batchid: str
    creator: str
    categoryid: str | None
    tasktype: str | None
    batch_size: int
    max_attempts: int
    calling_hours: str
    filter_task_id: int | None


def validate_params(raw: Mapping[str, Any]) -> RunParams:
    """The run's params checked against RUN_PARAMS as Airflow checks them, with their defaults filled in;
    ParamError naming the first bad field."""
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    values: dict[str, Any] = {}
    for name, spec in RUN_PARAMS.items():
        param = Param(**spec)
        try:
            values[name] = param.resolve(raw[name]) if name in raw else param.resolve()
        except ParamValidationError:
            raise ParamError(f"{name}: must be {_in_words(spec)}, got {raw.get(name)!r}") from None
    # An empty creator is the default one.
    return RunParams(**{**values, "creator": values["creator"] or RUN_PARAMS["creator"]["default"]})


def _in_words(spec: dict[str, Any]) -> str:
    """What a run param's schema asks for: "an integer from 1 to 1000", "a string of 1-64 characters"."""
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    text = " or ".join({"null": "null", "string": "a string", "integer": "an integer"}[t] for t in types)
    if "maximum" in spec:
        text += f" from {spec['minimum']} to {spec['maximum']}"
    elif "minimum" in spec:
        text += f" of at least {spec['minimum']}"
    if "maxLength" in spec:
        text += f" of {spec.get('minLength', 0)}-{spec['maxLength']} characters"
    if "pattern" in spec:
        text += f" ({spec['description']})"
    return text


def timezone() -> tzinfo:
    """The time zone of calling hours: CALLFILTER_TIMEZONE (default Asia/Shanghai; "system" is this machine's)."""
    name = os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE
    if name.lower() == "system":
        return datetime.now().astimezone().tzinfo or UTC
    return ZoneInfo(name)


def _bounds(calling_hours: str) -> tuple[time, time]:
    start, _, end = calling_hours.partition("-")
    try:
        return time.fromisoformat(start), time.fromisoformat(end)
    except ValueError:
        raise ParamError(f'calling_hours: must be "HH:MM-HH:MM" or "", got {calling_hours!r}') from None


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
