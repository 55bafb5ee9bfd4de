select * from call_filter_task where dag_run_id = %(dag_run_id)s order by id desc limit 1 for update
