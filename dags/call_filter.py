"""
### call_filter: screen the phone numbers of one case batch through the vendor (a call center)

One run per filter task. **register** creates the `call_filter_task` row (or picks up the one named by
`filter_task_id`), **plan** splits the numbers to screen into batches of at most `batch_size` with a
request JSON and an xlsx each, then per batch (a mapped group) **send** creates the vendor task once the
calling window has time for it and the vendor has room (`CALLFILTER_VENDOR_CAP`), and **query** waits for it
in the triggerer, stores its results and their verdicts. **apply_verdicts** reconciles the whole task and
**finish** closes it: finished, or finished with errors naming the failed batches (clear a failed query to
re-dial its batch), with the creator's summary xlsx.

Every task is safe to clear or retry: sends are idempotent on the vendor's `request_id`, stored results are
replaced, never duplicated, and every wait is deferred.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task, task_group

from callfilter.callbacks import mark_failed
from callfilter.operators import QueryBatchOperator, SendBatchOperator
from callfilter.params import RUN_PARAMS, vendor_cap

CASE_TEL = Asset("case_tel")

# Every task's weight is its own (weight_rule absolute; by the default downstream rule a send would add its
# query's weight to its own and outrank it): a query's is above every other task's (1).
QUERY_PRIORITY = 10

PARAMS = {name: Param(**spec) for name, spec in RUN_PARAMS.items()}


@dag(
    dag_id="call_filter",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    tags=["callfilter"],
    doc_md=__doc__,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "weight_rule": "absolute",
        "on_failure_callback": mark_failed,
    },
)
def call_filter():
    @task
    def register() -> dict:
        """Validate the params; create the filter task or pick up the registered one."""
        from callfilter.errors import task_outcome
        from callfilter.registration import register_run

        context = get_current_context()
        with task_outcome():
            return register_run(context["params"], context["run_id"])

    @task
    def plan(filter_task: dict) -> list[dict]:
        """Split the numbers to screen into batches; write each batch's request JSON and xlsx."""
        from airflow.sdk import conf

        from callfilter.errors import task_outcome
        from callfilter.planning import plan_run

        with task_outcome():
            return plan_run(
                filter_task["filter_task_id"],
                conf.getint("core", "max_map_length", fallback=1024),
                conf.getint("triggerer", "capacity", fallback=1000),
            )

    @task_group(group_id="batch")
    def screen_batch(batch: dict) -> None:
        """One batch: **send** creates its vendor task, **query** waits for it and stores its results."""
        # As many sends at once as the vendor has slots: when slots free together, they refill together.
        sent = SendBatchOperator(
            task_id="send",
            batch=batch,
            max_active_tis_per_dagrun=vendor_cap(),
            map_index_template="{{ batch_label }}",
        )
        # A resumed query (its vendor task has ended) goes before a ready send: storing what the vendor
        # finished comes before starting more of its work.
        QueryBatchOperator(
            task_id="query",
            batch=batch,
            batch_log_id=sent.output,
            retries=2,
            map_index_template="{{ batch_label }}",
            priority_weight=QUERY_PRIORITY,
        )

    @task(trigger_rule="all_done")
    def apply_verdicts(filter_task: dict | None) -> int:
        """Reconcile: set valid_status, valid_reason and valid_checked_at from every stored result."""
        from callfilter.errors import task_outcome
        from callfilter.registration import registered_task_id
        from callfilter.verdicts import apply_run

        with task_outcome():
            return apply_run(registered_task_id(filter_task))

    @task(outlets=[CASE_TEL], trigger_rule="all_done")
    def finish(filter_task: dict | None) -> dict:
        """Close the task (finished, or finished with errors naming the failed batches), write the creator's
        summary xlsx, announce the changed case_tel."""
        from callfilter.errors import task_outcome
        from callfilter.registration import registered_task_id
        from callfilter.reports import fail_on_batch_errors, finish_run

        with task_outcome():
            summary = finish_run(registered_task_id(filter_task))
            get_current_context()["outlet_events"][CASE_TEL].extra = {
                k: summary[k] for k in ("filter_task_id", "batchid", "valid", "invalid", "unknown")
            }
            fail_on_batch_errors(summary)
        return summary

    filter_task = register()
    batches = plan(filter_task)
    screened = screen_batch.expand(batch=batches)
    verdicts = apply_verdicts(filter_task)
    screened >> verdicts >> finish(filter_task)


call_filter()
