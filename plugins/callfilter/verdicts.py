"""Apply verdicts: set valid_status, valid_reason and valid_checked_at of a task's rows in one UPDATE."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from callfilter import codes, db, rules

log = logging.getLogger(__name__)


def apply_batch_verdicts(conn: psycopg.Connection[Any], filter_task_id: int, batch_id: int) -> int:
    """The verdicts of one batch's stored results (inside the caller's transaction); returns rows updated."""
    return db.run(conn, "apply_verdicts", _params(filter_task_id, batch_id))


def _params(filter_task_id: int, batch_id: int | None) -> dict[str, Any]:
    return {"filter_task_id": filter_task_id, "batch_id": batch_id, **rules.screening_rules().sql_params()}


def apply_verdicts(conn: psycopg.Connection[Any], filter_task_id: int) -> int:
    """Reconcile: every stored result of the task through the rule table; returns the rows updated."""
    with conn.transaction():
        updated = db.run(conn, "apply_verdicts", _params(filter_task_id, None))
        db.run(
            conn,
            "mark_task_step",
            {"filter_task_id": filter_task_id, "step": codes.TaskStep.VERDICTS_APPLIED},
        )
    log.info("filter task %s: verdicts set on %d rows", filter_task_id, updated)
    return updated


def apply_run(filter_task_id: int) -> int:
    """The apply_verdicts task: reconcile the task's verdicts on its own connection."""
    with db.connect() as conn:
        return apply_verdicts(conn, filter_task_id)


def verdict_counts(conn: psycopg.Connection[Any], batchid: str) -> dict[str, int]:
    """How many rows of the batchid are valid, invalid and unknown now."""
    row = db.one(conn, "verdict_counts", {"batchid": batchid}) or {}
    return {key: int(row.get(key) or 0) for key in ("valid", "invalid", "unknown", "total")}
