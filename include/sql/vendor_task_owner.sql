-- The other batch log (if any) that already holds a vendor task id.
select id, filter_task_id, batch_order from call_filter_send_batch_log
where task_id = %(task_id)s and id <> %(log_id)s
limit 1
