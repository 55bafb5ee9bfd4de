update call_filter_task
set status = 3, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s and status not in (2, 4)
