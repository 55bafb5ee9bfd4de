-- A later step reached; never on a task whose plan did not happen.
update call_filter_task set step = greatest(step, %(step)s) where id = %(filter_task_id)s and step >= %(step_planned)s
