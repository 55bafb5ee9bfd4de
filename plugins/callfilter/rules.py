"""Calling rules: when a number already screened is screened again (settings read where the task runs).

- `CALLFILTER_RESCREEN_DELAY` (seconds, default 86400): a number whose verdict stayed unknown is dialed again by
  a later filter task only this long after the last task that planned to dial it.
- `CALLFILTER_RESCREEN_MAX` (default 3): a number is screened at most this many times; one still unknown then
  gets reason UNREACHABLE_MAX and is left alone.
- `CALLFILTER_VALID_RESCREEN_AGE` (seconds, default empty: off): a valid number whose verdict is older than
  this is screened again.

The do-not-call list (`call_filter_dnc`) and the normal form of a number (the SQL function
`callfilter_phone`) are in include/sql/schema.sql; planning applies them all in SQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

RESCREEN_DELAY_ENV = "CALLFILTER_RESCREEN_DELAY"
RESCREEN_MAX_ENV = "CALLFILTER_RESCREEN_MAX"
VALID_RESCREEN_AGE_ENV = "CALLFILTER_VALID_RESCREEN_AGE"
DEFAULT_RESCREEN_DELAY = 86400.0
DEFAULT_RESCREEN_MAX = 3


@dataclass(frozen=True)
class ScreeningRules:
    rescreen_delay: float
    rescreen_max: int
    valid_rescreen_age: float | None

    def sql_params(self) -> dict[str, float | int | None]:
        """The rules as the named parameters of plan_batches.sql and apply_verdicts.sql."""
        return {
            "rescreen_delay": self.rescreen_delay,
            "rescreen_max": self.rescreen_max,
            "valid_rescreen_age": self.valid_rescreen_age,
        }


def _number(name: str, default: float | None, minimum: float) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{name} must be a number of at least {minimum:g}, got {raw!r}")
    return value


def screening_rules() -> ScreeningRules:
    """The re-screening settings from the environment, with their defaults; ValueError naming a bad one."""
    delay = _number(RESCREEN_DELAY_ENV, DEFAULT_RESCREEN_DELAY, 0)
    most = _number(RESCREEN_MAX_ENV, DEFAULT_RESCREEN_MAX, 1)
    if most is None or most != int(most):
        raise ValueError(f"{RESCREEN_MAX_ENV} must be a whole number of at least 1, got {most!r}")
    return ScreeningRules(
        rescreen_delay=delay or 0.0,
        rescreen_max=int(most),
        valid_rescreen_age=_number(VALID_RESCREEN_AGE_ENV, None, 0),
    )
