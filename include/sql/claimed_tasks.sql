-- Status-0 tasks a poll claimed (their call_filter run id is set), oldest first: their runs are started,
-- or were started before (a run id is started once).
select * from call_filter_task
where status = %(task_registered)s and dag_run_id like 'poller\_\_task-%%'
order by createtime, id
