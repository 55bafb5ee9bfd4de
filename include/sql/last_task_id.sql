select coalesce(max(id), 0) as id from call_filter_task
