select b.id as batch_id, b.batch_order, b.totalnum, b.status, b.filter_task_id,
       t.batchid, t.creator, t.max_attempts, t.calling_hours
from call_filter_send_batch b
join call_filter_task t on t.id = b.filter_task_id
where b.id = %(batch_id)s
