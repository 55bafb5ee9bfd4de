update call_filter_task
set status = %(status)s, step = %(step_finished)s, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s
returning *
