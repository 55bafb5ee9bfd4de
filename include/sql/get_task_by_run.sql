-- The task a DAG run made before (a rerun of the run): only one of the run's own batchid, so a DAG run id used
-- again never hands a run another batchid's task.
select * from call_filter_task where dag_run_id = %(dag_run_id)s and batchid = %(batchid)s
order by id desc limit 1 for update
