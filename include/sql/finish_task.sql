-- A cancelled task stays cancelled, with its message.
update call_filter_task
set status = case when status = %(task_cancelled)s then status else %(status)s end,
    step = %(step_finished)s, runendtime = now(),
    message = case when status = %(task_cancelled)s then message else %(message)s end
where id = %(filter_task_id)s
returning *
