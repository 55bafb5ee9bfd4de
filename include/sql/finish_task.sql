update call_filter_task
set status = %(status)s, step = 5, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s
returning *
