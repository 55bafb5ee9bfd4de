update call_filter_task set step = greatest(step, %(step)s) where id = %(filter_task_id)s
