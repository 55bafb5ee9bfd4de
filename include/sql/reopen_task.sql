-- A cleared step of an ended task: the task is running again.
update call_filter_task set status = 1, runendtime = null
where id = %(filter_task_id)s and status in (3, 4)
