select status, message from call_filter_task where id = %(filter_task_id)s
