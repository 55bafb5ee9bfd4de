"""Status, step and flag codes the pipeline writes, as enums.

call_filter_dict (seeded by include/sql/schema.sql) explains each one to operators: a member's name is its
dictionary name (lower case, "_" for " "). The SQL files take the codes as named parameters
(`%(task_finished)s`): `sql_params()` gives them all, and `db` passes them to every SQL file it runs.
"""

from __future__ import annotations

import enum


class TaskStatus(enum.IntEnum):
    """call_filter_task.status"""

    REGISTERED = 0
    RUNNING = 1
    FINISHED = 2
    FAILED = 3
    FINISHED_WITH_ERRORS = 4
    CANCELLED = 5


class TaskStep(enum.IntEnum):
    """call_filter_task.step: the last step reached"""

    NONE = 0
    REGISTERED = 1
    PLANNED = 2
    SENDING = 3
    VERDICTS_APPLIED = 4
    FINISHED = 5


class BatchStatus(enum.IntEnum):
    """call_filter_send_batch.status"""

    PLANNED = 0
    SENT = 1
    STORED = 2
    FAILED = 3


class Flag(enum.IntEnum):
    """*_fromflag: DONE once the request is made; *_recvflag: DONE answered with success, FAILED failure"""

    NOT_YET = 0
    DONE = 1
    FAILED = -1


class VendorEnd(enum.StrEnum):
    """call_filter_send_batch_log.vendor_status when we ended the vendor task (cancelled through the API):
    it did not end within the query timeout, or the calling window closed while it dialed"""

    TIMED_OUT = "TIMEOUT"
    WINDOW_CLOSED = "WINDOW_CLOSED"


class ValidStatus(enum.IntEnum):
    """case_tel.valid_status: the verdict on a number"""

    UNKNOWN = 0
    VALID = 1
    INVALID = 2


class ValidReason(enum.StrEnum):
    """case_tel.valid_reason when it is not the vendor's call_status"""

    MALFORMED_NUMBER = "FORMAT"
    VENDOR_BLACKLIST = "BLACKLIST"
    DO_NOT_CALL = "DNC"
    SCREENING_EXHAUSTED = "UNREACHABLE_MAX"


# The parameter name of a code in the SQL files: prefix + "_" + member name in lower case.
SQL_PREFIXES: dict[type[enum.Enum], str] = {
    TaskStatus: "task",
    TaskStep: "step",
    BatchStatus: "batch",
    Flag: "flag",
    VendorEnd: "vendor",
    ValidStatus: "verdict",
    ValidReason: "reason",
}


def sql_params() -> dict[str, int | str]:
    """Every code as a named SQL parameter: task_finished, step_planned, batch_stored, flag_failed,
    vendor_timed_out, verdict_invalid, reason_malformed_number, ..."""
    return {
        f"{prefix}_{member.name.lower()}": member.value
        for codes, prefix in SQL_PREFIXES.items()
        for member in codes
    }
