select b.id as batch_id, b.batch_order, b.totalnum, b.status
from call_filter_send_batch b
where b.filter_task_id = %(filter_task_id)s
order by b.batch_order
