-- Seconds per accepted number of this task's finished vendor tasks, from creation to results stored.
select sum(extract(epoch from query_recvtime - send_recvtime)) / nullif(sum(accepted), 0) as seconds_per_number
from call_filter_send_batch_log
where filter_task_id = %(filter_task_id)s and vendor_status = %(vendor_status)s and accepted > 0
