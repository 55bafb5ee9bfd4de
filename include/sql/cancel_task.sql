-- An operator stops a task: cancelled, whatever it was doing (a finished task stays finished).
update call_filter_task
set status = %(task_cancelled)s, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s and status in (%(task_registered)s, %(task_running)s, %(task_failed)s)
returning *
