-- The filter task a call_filter DAG run registered or claimed (read only; get_task_by_run.sql locks).
select id from call_filter_task where dag_run_id = %(dag_run_id)s order by id desc limit 1
