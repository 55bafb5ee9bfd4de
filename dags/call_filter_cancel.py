"""
### call_filter_cancel: stop a filter task

Trigger it with the task's `filter_task_id`. **cancel** marks the task cancelled (status 5, "cancelled by
<who>" in `message`): its call_filter run sends no further batch. Every vendor task of it still dialing is
cancelled through the vendor API; what it dialed is stored (calls on the line come back as CALL_LIMIT) and
the verdicts go into case_tel. The call_filter run then ends failed, saying the task was cancelled. Safe to
run again.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="call_filter_cancel",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "filter_task_id": Param(type="integer", minimum=1, description="the filter task to stop"),
        "reason": Param("", type="string", maxLength=200, description="why (kept in the task's message)"),
    },
    tags=["callfilter"],
    doc_md=__doc__,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=20)},
)
def call_filter_cancel():
    @task
    def cancel() -> dict:
        """Mark the task cancelled, cancel its dialing vendor tasks, store and apply what they dialed."""
        from callfilter.cancelling import cancel_run
        from callfilter.errors import task_outcome

        context = get_current_context()
        params = context["params"]
        by = f"call_filter_cancel run {context['run_id']}"
        if params.get("reason"):
            by += f": {params['reason']}"
        with task_outcome():
            return cancel_run(int(params["filter_task_id"]), by)

    cancel()


call_filter_cancel()
