select id, status, dag_run_id from call_filter_task
where batchid = %(batchid)s and status in (0, 1) and id <> coalesce(%(filter_task_id)s, -1)
order by id limit 1
