update call_filter_task
set status = %(task_running)s, step = greatest(step, %(step_registered)s), totalnum = %(totalnum)s, dag_run_id = %(dag_run_id)s,
    runbegintime = coalesce(runbegintime, now()), runendtime = null, message = null
where id = %(filter_task_id)s
returning *
