-- A status-0 task that cannot be screened as the business system wrote it: failed with the reason.
update call_filter_task
set status = %(task_failed)s, runendtime = now(), message = %(message)s
where id = %(filter_task_id)s and status = %(task_registered)s
