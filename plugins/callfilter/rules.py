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

from dataclasses import dataclass

from callfilter.params import env_number

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


def screening_rules() -> ScreeningRules:
    """The re-screening settings from the environment, with their defaults; ValueError naming a bad one."""
    return ScreeningRules(
        rescreen_delay=env_number(RESCREEN_DELAY_ENV, DEFAULT_RESCREEN_DELAY, 0),
        rescreen_max=env_number(RESCREEN_MAX_ENV, DEFAULT_RESCREEN_MAX, 1, whole=True),
        valid_rescreen_age=env_number(VALID_RESCREEN_AGE_ENV, None, 0),
    )
