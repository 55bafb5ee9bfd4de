-- Tasks a DAG run should be working on: running, or claimed by a poll and not yet picked up by its run.
select id, status, batchid, dag_run_id from call_filter_task
where dag_run_id is not null
  and (status = %(task_running)s or (status = %(task_registered)s and dag_run_id like 'poller\_\_task-%%'))
order by id
