insert into call_filter_task (step, status, batchid, categoryid, tasktype, totalnum, creator,
                              runbegintime, batch_size, max_attempts, calling_hours, dag_run_id)
values (%(step_registered)s, %(task_running)s, %(batchid)s, %(categoryid)s, %(tasktype)s, %(totalnum)s, %(creator)s,
        now(), %(batch_size)s, %(max_attempts)s, %(calling_hours)s, %(dag_run_id)s)
returning *
