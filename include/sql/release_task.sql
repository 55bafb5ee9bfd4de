-- A task whose DAG run no longer runs: failed with the reason, unless it moved on meanwhile.
update call_filter_task
set status = %(task_failed)s, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s and status = %(status)s and dag_run_id = %(dag_run_id)s
