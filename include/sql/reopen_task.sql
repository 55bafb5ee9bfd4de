-- A cleared step of an ended task: the task is running again.
update call_filter_task set status = %(task_running)s, runendtime = null
where id = %(filter_task_id)s and status in (%(task_failed)s, %(task_finished_with_errors)s)
