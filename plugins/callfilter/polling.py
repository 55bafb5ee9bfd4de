"""The poller (call_filter_poller): start call_filter runs for the tasks the business system registered.

The business system inserts `call_filter_task` rows with status 0. Each poll

1. releases the tasks whose DAG run no longer runs (failed, or deleted, or lost: they would keep their
   batchid closed for good): such a task ends failed with the reason in `message`;
2. claims the oldest unclaimed status-0 tasks, at most `CALLFILTER_POLLER_MAX_RUNS` (default 10): one
   transaction sets each one's call_filter run id (`poller__task-<id>-<createtime>`), skipping rows another poll is
   claiming at that moment, so overlapping polls never claim a task twice. A row written with bad data
   (empty or unknown batchid, bad calling_hours, batch_size out of range) ends failed with the reason;
3. returns the run of every claimed task still at status 0; the DAG starts each one (TriggerDagRunOperator
   with that fixed run id: a retried poll finds the run already there and starts nothing twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

from callfilter import db
from callfilter.codes import TaskStatus
from callfilter.errors import FinalError, RegistrationError
from callfilter.params import env_number, validate_params
from callfilter.registration import fail_registered

log = logging.getLogger(__name__)

MAX_RUNS_ENV = "CALLFILTER_POLLER_MAX_RUNS"
DEFAULT_MAX_RUNS = 10
ACTIVE_RUN_STATES = ("queued", "running")


def max_runs() -> int:
    """How many status-0 tasks one poll claims at most (CALLFILTER_POLLER_MAX_RUNS, default 10)."""
    return env_number(MAX_RUNS_ENV, DEFAULT_MAX_RUNS, 1, whole=True)


def run_conf(task: dict[str, Any]) -> dict[str, Any]:
    """The call_filter params of a registered task row."""
    return {
        "batchid": task["batchid"],
        "creator": task["creator"],
        "categoryid": task["categoryid"],
        "tasktype": task["tasktype"],
        "batch_size": task["batch_size"],
        "max_attempts": task["max_attempts"],
        "calling_hours": task["calling_hours"],
        "filter_task_id": task["id"],
    }


def check_registered(conn: psycopg.Connection[Any], task: dict[str, Any]) -> None:
    """Raise a FinalError naming what is wrong with a row the business system wrote."""
    validate_params(run_conf(task))
    counts = db.one(conn, "count_numbers_to_screen", {"batchid": task["batchid"]}) or {}
    if not counts.get("total"):
        raise RegistrationError(f"batchid {task['batchid']} has no numbers")


def claim_tasks(conn: psycopg.Connection[Any], limit: int) -> list[dict[str, Any]]:
    """Claim the oldest unclaimed status-0 tasks (one transaction); fail the ones with bad data.

    Returns the claimed tasks that can be screened."""
    with conn.transaction():
        claimed = db.all_rows(conn, "claim_registered_tasks", {"limit": limit})
    good = []
    for task in sorted(claimed, key=lambda t: (t["createtime"], t["id"])):
        try:
            check_registered(conn, task)
        except FinalError as exc:
            fail_registered(conn, task["id"], f"call_filter_poller: {exc}")
        else:
            good.append(task)
    log.info("claimed %d registered tasks (%d with bad data failed)", len(claimed), len(claimed) - len(good))
    return good


def release_stale(
    conn: psycopg.Connection[Any], dag_run_state: Callable[[str], str | None], dag_id: str = "call_filter"
) -> list[dict[str, Any]]:
    """Fail the tasks whose DAG run no longer runs. `dag_run_state(run_id)` is the run's state, or None when
    there is no such run. A claimed status-0 task without a run yet is left alone: its run is started next."""
    released = []
    for task in db.all_rows(conn, "active_tasks"):
        state = dag_run_state(task["dag_run_id"])
        if state in ACTIVE_RUN_STATES or (state is None and task["status"] == TaskStatus.REGISTERED):
            continue
        why = "no longer exists" if state is None else f"is {state}"
        message = (
            f"released by call_filter_poller: its {dag_id} run {task['dag_run_id']} {why}; "
            f"trigger {dag_id} with filter_task_id {task['id']} to continue it"
        )
        with conn.transaction():
            if db.run(
                conn,
                "release_task",
                {
                    "filter_task_id": task["id"],
                    "status": task["status"],
                    "dag_run_id": task["dag_run_id"],
                    "message": message,
                },
            ):
                log.warning("filter task %s (batchid %s): %s", task["id"], task["batchid"], message)
                released.append({**task, "message": message})
    return released


def runs_to_start(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The call_filter run of every claimed task still at status 0, as TriggerDagRunOperator kwargs."""
    return [
        {"trigger_run_id": task["dag_run_id"], "conf": run_conf(task)}
        for task in db.all_rows(conn, "claimed_tasks")
    ]


def poll(dag_run_state: Callable[[str], str | None], limit: int | None = None) -> list[dict[str, Any]]:
    """The poll task: release stale tasks, claim new ones; returns the runs to start."""
    with db.connect() as conn:
        release_stale(conn, dag_run_state)
        claim_tasks(conn, limit or max_runs())
        return runs_to_start(conn)
