"""
### call_filter_housekeeping: daily clean-up and report

**housekeep** removes the request, batch, result and summary files older than
`CALLFILTER_FILES_RETENTION_DAYS` (default 30) of filter tasks that have ended for good (never a file of a
task that may still run), and reports, as warnings in its log and in its return value, the vendor tasks that
stayed unfinished past `CALLFILTER_QUERY_TIMEOUT`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="call_filter_housekeeping",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["callfilter"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
)
def call_filter_housekeeping():
    @task
    def housekeep() -> dict:
        """Remove old files of ended tasks; report vendor tasks unfinished past the query timeout."""
        from callfilter.errors import task_outcome
        from callfilter.housekeeping import housekeep as run_housekeeping
        from callfilter.operators import query_timeout

        with task_outcome():
            return run_housekeeping(query_timeout())

    housekeep()


call_filter_housekeeping()
