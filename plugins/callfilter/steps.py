"""The call_filter steps as the DAG calls them: each opens what it needs and does one step."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from callfilter import db, files
from callfilter.errors import NotPlannedError, ParamError, PlanError, RegistrationError
from callfilter.params import validate_params
from callfilter.planning import plan_batches
from callfilter.registration import register_task

log = logging.getLogger(__name__)

FINAL_ERRORS = (ParamError, RegistrationError, PlanError, NotPlannedError)
T = TypeVar("T")


def fail_final(step: Callable[..., T]) -> Callable[..., T]:
    """Errors that a retry cannot mend fail the task at once, with their message."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> T:
        try:
            return step(*args, **kwargs)
        except FINAL_ERRORS as exc:
            raise AirflowFailException(str(exc)) from None

    return run


@fail_final
def register(params: Mapping[str, Any], dag_run_id: str) -> dict[str, Any]:
    """Validate the params and create or claim the filter task; returns its id for XCom."""
    run_params = validate_params(params)
    with db.connect() as conn:
        registered = register_task(conn, run_params, dag_run_id)
    if registered.nothing_to_screen:
        log.info("batchid %s has nothing left to screen: no vendor call will be made", registered.batchid)
    return {
        "filter_task_id": registered.filter_task_id,
        "batchid": registered.batchid,
        "totalnum": registered.totalnum,
    }


@fail_final
def plan(filter_task: Mapping[str, Any], max_batches: int) -> list[dict[str, Any]]:
    """Plan the batches; returns one small descriptor per batch for the mapped tasks."""
    with db.connect() as conn:
        task = db.one(conn, "get_task", {"filter_task_id": filter_task["filter_task_id"]})
        if task is None:
            raise PlanError(f"filter task {filter_task['filter_task_id']} does not exist")
        batches = plan_batches(conn, task, files.Storage(), max_batches)
    for batch in batches:
        log.info("%s -> %s", batch.label, files.request_path(batch.filter_task_id, batch.batch_order))
    return [batch.to_xcom() for batch in batches]


def _registered(filter_task: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The register step's output; the steps after the batches run whatever happened before them."""
    if not filter_task:
        raise AirflowFailException("register did not succeed: there is no filter task to close")
    return filter_task


def apply(filter_task: Mapping[str, Any] | None) -> int:
    from callfilter.verdicts import apply_verdicts

    filter_task = _registered(filter_task)

    with db.connect() as conn:
        return apply_verdicts(conn, filter_task["filter_task_id"])


@fail_final
def finish(filter_task: Mapping[str, Any] | None) -> dict[str, Any]:
    from callfilter.reports import finish_task

    filter_task = _registered(filter_task)

    with db.connect() as conn:
        return finish_task(conn, filter_task["filter_task_id"], files.Storage())


def fail_on_batch_errors(summary: Mapping[str, Any]) -> None:
    """A task finished with errors fails its run, so the grid shows it; the task row says which batches."""
    if summary.get("errors"):
        raise AirflowFailException(
            f"filter task {summary['filter_task_id']} finished with errors: {summary['errors']}. "
            "Clear a failed batch's query task (with downstream) to re-dial it."
        )
