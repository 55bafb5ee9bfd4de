-- The other batch log (if any) following the same vendor task id: one of this filter task, or one whose
-- vendor task has not been seen to end. (A vendor may number its tasks anew over the years, or after a
-- reset; an id held by a batch long stored is no clash.)
select id, filter_task_id, batch_order from call_filter_send_batch_log
where task_id = %(task_id)s and id <> %(log_id)s
  and (filter_task_id = %(filter_task_id)s or vendor_status is null)
limit 1
