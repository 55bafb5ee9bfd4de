-- The task's batches whose results are not all stored, with why.
select b.batch_order, b.status, l.task_id, l.vendor_status, l.message
from call_filter_send_batch b
left join call_filter_send_batch_log l on l.filter_send_batch_id = b.id
where b.filter_task_id = %(filter_task_id)s and b.status <> %(batch_stored)s
order by b.batch_order
