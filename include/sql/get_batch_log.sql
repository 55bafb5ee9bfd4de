select l.*, b.status as batch_status, t.batchid
from call_filter_send_batch_log l
join call_filter_send_batch b on b.id = l.filter_send_batch_id
join call_filter_task t on t.id = l.filter_task_id
where l.id = %(log_id)s
