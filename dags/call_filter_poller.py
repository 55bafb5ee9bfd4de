"""
### call_filter_poller: start a call_filter run for each task the business system registered

Every 5 minutes **poll** releases the filter tasks whose call_filter run no longer runs (they end failed,
naming the run, so their batchid is not blocked for good), claims the oldest status-0 tasks (at most
`CALLFILTER_POLLER_MAX_RUNS` per poll, default 10; a row with bad data ends failed with the reason) and
**start_run** starts one call_filter run per claimed task, with `filter_task_id` and the run id
`poller__task-<id>-<createtime>`. The claim is one transaction that skips rows another poll holds, and a run id is
started once: overlapping or retried polls start exactly one run per task.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

FILTER_DAG_ID = "call_filter"


@dag(
    dag_id="call_filter_poller",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    tags=["callfilter"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
)
def call_filter_poller():
    @task
    def poll() -> list[dict]:
        """Release tasks whose run no longer runs; claim the oldest registered tasks; the runs to start."""
        from callfilter.errors import task_outcome
        from callfilter.polling import poll as poll_tasks

        ti = get_current_context()["ti"]

        def dag_run_state(run_id: str) -> str | None:
            if not ti.get_dr_count(dag_id=FILTER_DAG_ID, run_ids=[run_id]):
                return None
            state = ti.get_dagrun_state(dag_id=FILTER_DAG_ID, run_id=run_id)
            return str(getattr(state, "value", state))  # "queued", "running", "success", "failed"

        with task_outcome():
            return poll_tasks(dag_run_state)

    TriggerDagRunOperator.partial(
        task_id="start_run",
        doc="Start the claimed task's call_filter run (once: a run id that exists is skipped).",
        trigger_dag_id=FILTER_DAG_ID,
        skip_when_already_exists=True,
        openlineage_inject_parent_info=False,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(poll())


call_filter_poller()
