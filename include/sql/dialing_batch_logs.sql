-- The task's batches whose current vendor task was created and not seen to end.
select l.* from call_filter_send_batch_log l
where l.filter_task_id = %(filter_task_id)s and l.task_id is not null
  and l.send_recvflag = %(flag_done)s and l.vendor_status is null
order by l.batch_order
