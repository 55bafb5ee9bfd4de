"""Register (the old step 1): create the filter task of a run, or pick up the one it names."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from callfilter import db
from callfilter.codes import TaskStatus, TaskStep
from callfilter.errors import FinalError, RegistrationError
from callfilter.params import RunParams, validate_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    filter_task_id: int
    batchid: str
    totalnum: int
    nothing_to_screen: bool


def register_task(conn: psycopg.Connection[Any], params: RunParams, dag_run_id: str) -> Registered:
    """Create or claim the run's filter task; a rerun of the same DAG run finds the task it made."""
    with conn.transaction():
        task = None
        if params.filter_task_id is not None:
            task = db.one(conn, "get_task", {"filter_task_id": params.filter_task_id})
            if task is None:
                raise RegistrationError(f"filter_task_id {params.filter_task_id} does not exist")
            if task["batchid"] != params.batchid:
                raise RegistrationError(
                    f"filter task {task['id']} screens batchid {task['batchid']!r}, not {params.batchid!r}"
                )
        else:
            task = db.one(conn, "get_task_by_run", {"dag_run_id": dag_run_id, "batchid": params.batchid})
        if task and task["status"] == TaskStatus.CANCELLED:
            raise RegistrationError(f"filter task {task['id']} was cancelled: {task['message']}")
        if task and task["status"] == TaskStatus.RUNNING and task["dag_run_id"] not in (None, dag_run_id):
            raise RegistrationError(f"filter task {task['id']} is being run by DAG run {task['dag_run_id']}")
        batchid = task["batchid"] if task else params.batchid
        db.run(conn, "lock_batchid", {"batchid": batchid})
        other = db.one(
            conn, "find_open_task", {"batchid": batchid, "filter_task_id": task["id"] if task else None}
        )
        if other is not None and (task is None or task["status"] == TaskStatus.REGISTERED):
            state = {
                TaskStatus.REGISTERED: "registered",
                TaskStatus.RUNNING: "running",
                TaskStatus.FAILED: "failed with batches not stored",
                TaskStatus.FINISHED_WITH_ERRORS: "finished with errors",
            }.get(other["status"], str(other["status"]))
            raise RegistrationError(
                f"batchid {batchid} already has an unfinished filter task {other['id']} ({state}); "
                "let it finish, or clear its failed batches to re-dial them"
            )
        counts = db.one(conn, "count_numbers_to_screen", {"batchid": batchid}) or {}
        if not counts.get("total"):
            raise RegistrationError(f"batchid {batchid} has no numbers")
        totalnum = int(counts["to_screen"])
        if task is None:
            task = db.one(
                conn,
                "insert_task",
                {
                    "batchid": batchid,
                    "categoryid": params.categoryid,
                    "tasktype": params.tasktype,
                    "totalnum": totalnum,
                    "creator": params.creator,
                    "batch_size": params.batch_size,
                    "max_attempts": params.max_attempts,
                    "calling_hours": params.calling_hours,
                    "dag_run_id": dag_run_id,
                },
            )
            log.info(
                "registered filter task %s for batchid %s: %d numbers to screen",
                task["id"],
                batchid,
                totalnum,
            )
        elif task["status"] == TaskStatus.FINISHED and task["dag_run_id"] == dag_run_id:
            log.info("filter task %s is already finished; this rerun redoes nothing", task["id"])
        else:
            if task["step"] >= TaskStep.PLANNED:
                totalnum = task["totalnum"]  # planned: keep the count the batches were made from
            task = db.one(
                conn,
                "claim_task",
                {"filter_task_id": task["id"], "totalnum": totalnum, "dag_run_id": dag_run_id},
            )
            log.info(
                "picked up filter task %s for batchid %s: %d numbers to screen", task["id"], batchid, totalnum
            )
        assert task is not None
        return Registered(task["id"], batchid, task["totalnum"], task["totalnum"] == 0)


def register_run(params: Mapping[str, Any], dag_run_id: str) -> dict[str, Any]:
    """The register task: validate the params, create or claim the filter task; returns it for XCom.

    A task the business system registered (status 0) that cannot be screened ends failed with the reason,
    rather than staying at 0 and blocking its batchid."""
    with db.connect() as conn:
        try:
            registered = register_task(conn, validate_params(params), dag_run_id)
        except FinalError as exc:
            task_id = params.get("filter_task_id")
            if isinstance(task_id, int):
                fail_registered(conn, task_id, str(exc))
            raise
    if registered.nothing_to_screen:
        log.info("batchid %s has nothing left to screen: no vendor call will be made", registered.batchid)
    return {
        "filter_task_id": registered.filter_task_id,
        "batchid": registered.batchid,
        "totalnum": registered.totalnum,
    }


def fail_registered(conn: psycopg.Connection[Any], filter_task_id: int, reason: str) -> bool:
    """End a status-0 task with a failed status and the reason in `message`; False if it is not at 0."""
    with conn.transaction():
        failed = db.run(
            conn, "fail_registered_task", {"filter_task_id": filter_task_id, "message": reason[:2000]}
        )
    if failed:
        log.warning("filter task %s cannot be screened: %s", filter_task_id, reason)
    return bool(failed)


def registered_task_id(filter_task: Mapping[str, Any] | None) -> int:
    """The filter task id register pushed; the tasks after the batches run whatever happened before them."""
    if not filter_task:
        raise RegistrationError("register did not succeed: there is no filter task to close")
    return int(filter_task["filter_task_id"])
