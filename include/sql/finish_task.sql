update call_filter_task
set status = 2, step = 5, runendtime = now(), message = null
where id = %(filter_task_id)s
returning *
