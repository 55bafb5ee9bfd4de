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
        filter_task = None
        if params.filter_task_id is not None:
            filter_task = db.one(conn, "get_task", {"filter_task_id": params.filter_task_id})
            if filter_task is None:
                raise RegistrationError(f"filter_task_id {params.filter_task_id} does not exist")
            if filter_task["batchid"] != params.batchid:
                raise RegistrationError(
                    f"filter task {filter_task['id']} screens batchid {filter_task['batchid']!r}, not {params.batchid!r}"
                )
        else:
            filter_task = db.one(
                conn, "get_task_by_run", {"dag_run_id": dag_run_id, "batchid": params.batchid}
            )
        if filter_task and filter_task["status"] == TaskStatus.CANCELLED:
            raise RegistrationError(
                f"filter task {filter_task['id']} was cancelled: {filter_task['message']}"
            )
        if (
            filter_task
            and filter_task["status"] == TaskStatus.RUNNING
            and filter_task["dag_run_id"] not in (None, dag_run_id)
        ):
            raise RegistrationError(
                f"filter task {filter_task['id']} is being run by DAG run {filter_task['dag_run_id']}"
            )
        batchid = filter_task["batchid"] if filter_task else params.batchid
        db.run(conn, "lock_batchid", {"batchid": batchid})
        other = db.one(
            conn,
            "find_open_task",
            {"batchid": batchid, "filter_task_id": filter_task["id"] if filter_task else None},
        )
        if other is not None and (filter_task is None or filter_task["status"] == TaskStatus.REGISTERED):
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
        if filter_task is None:
            filter_task = db.one(
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
                filter_task["id"],
                batchid,
                totalnum,
            )
        elif filter_task["status"] == TaskStatus.FINISHED and filter_task["dag_run_id"] == dag_run_id:
            log.info("filter task %s is already finished; this rerun redoes nothing", filter_task["id"])
        else:
            if filter_task["step"] >= TaskStep.PLANNED:
                totalnum = filter_task["totalnum"]  # planned: keep the count the batches were made from
            filter_task = db.one(
                conn,
                "claim_task",
                {"filter_task_id": filter_task["id"], "totalnum": totalnum, "dag_run_id": dag_run_id},
            )
            log.info(
                "picked up filter task %s for batchid %s: %d numbers to screen",
                filter_task["id"],
                batchid,
                totalnum,
            )
        assert filter_task is not None
        return Registered(filter_task["id"], batchid, filter_task["totalnum"], filter_task["totalnum"] == 0)


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
