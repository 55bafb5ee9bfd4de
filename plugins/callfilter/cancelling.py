"""Cancel (call_filter_cancel): an operator stops a filter task.

The task row says cancelled (status 5) at once, so no further batch of it is sent (each send reads the task's
status before it asks for a vendor task); every vendor task of it still dialing is cancelled through the
API, and what it dialed is stored and its verdicts applied (the calls on the line come back as CALL_LIMIT).
Safe to run again: a cancelled task stays cancelled, and a second store of a batch replaces the first.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from callfilter import db, files, slots
from callfilter.codes import TaskStatus
from callfilter.errors import BatchFailed, FinalError
from callfilter.results import store_results
from callfilter.vendor import VendorHook
from callfilter.verdicts import apply_verdicts

log = logging.getLogger(__name__)


class TaskCancelled(FinalError):
    """The filter task was cancelled by an operator: nothing more is sent for it."""


class CannotCancel(FinalError):
    """The filter task does not exist or has already finished."""


def is_cancelled(conn: psycopg.Connection[Any], filter_task_id: int) -> str | None:
    """The cancel message when the task is cancelled, else None."""
    row = db.one(conn, "task_status", {"filter_task_id": filter_task_id})
    if row and row["status"] == TaskStatus.CANCELLED:
        return row["message"] or "cancelled"
    return None


def stop_vendor_task(
    conn: psycopg.Connection[Any], hook: VendorHook, storage: files.Storage, batch_log: dict[str, Any]
) -> str:
    """Cancel a batch's dialing vendor task through the API and store what it dialed; its end status."""
    ended = hook.cancel_task(batch_log["task_id"])["status"]
    log.info("batch %s: vendor task %s is %s", batch_log["batch_order"], batch_log["task_id"], ended)
    try:
        store_results(conn, hook, storage, batch_log["id"], ended)
    except BatchFailed as exc:  # a cancelled vendor task "fails" its batch: expected here
        log.info("batch %s stored: %s", batch_log["batch_order"], exc)
    slots.release(conn, batch_log["id"])
    return ended


def cancel_task(
    conn: psycopg.Connection[Any], hook: VendorHook, storage: files.Storage, filter_task_id: int, by: str
) -> dict[str, Any]:
    """Cancel a filter task: mark it, cancel its dialing vendor tasks, store and apply what was dialed."""
    message = f"cancelled by {by}"
    with conn.transaction():
        task = db.one(conn, "cancel_task", {"filter_task_id": filter_task_id, "message": message})
    if task is None:
        current = db.one(conn, "task_status", {"filter_task_id": filter_task_id})
        if current is None:
            raise CannotCancel(f"filter task {filter_task_id} does not exist")
        if current["status"] != TaskStatus.CANCELLED:
            raise CannotCancel(
                f"filter task {filter_task_id} has ended (status {current['status']}); nothing to cancel"
            )
        log.info("filter task %s was cancelled before; finishing the cancel", filter_task_id)
    stopped = {}
    for batch_log in db.all_rows(conn, "dialing_batch_logs", {"filter_task_id": filter_task_id}):
        stopped[batch_log["batch_order"]] = stop_vendor_task(conn, hook, storage, batch_log)
    updated = apply_verdicts(conn, filter_task_id)
    log.info(
        "filter task %s cancelled: %d vendor tasks stopped (%s); verdicts set on %d rows",
        filter_task_id,
        len(stopped),
        ", ".join(f"batch {order}: {status}" for order, status in stopped.items()) or "none dialing",
        updated,
    )
    return {"filter_task_id": filter_task_id, "vendor_tasks_stopped": stopped, "verdicts": updated}


def cancel_run(filter_task_id: int, by: str) -> dict[str, Any]:
    """The cancel task of call_filter_cancel."""
    with db.connect() as conn:
        return cancel_task(conn, VendorHook(), files.Storage(), filter_task_id, by)
