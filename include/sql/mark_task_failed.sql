update call_filter_task
set status = %(task_failed)s, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s and status not in (%(task_finished)s, %(task_finished_with_errors)s, %(task_cancelled)s)
