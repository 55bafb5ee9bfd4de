-- Vendor tasks that stayed unfinished past the query timeout: still dialing as far as we know, or cancelled
-- by us when the timeout passed.
select l.filter_task_id, l.batch_order, l.task_id, l.send_recvtime, l.vendor_status, t.status as task_status
from call_filter_send_batch_log l
join call_filter_task t on t.id = l.filter_task_id
where l.task_id is not null
  and ((l.vendor_status is null and l.send_recvtime < now() - make_interval(secs => %(timeout_seconds)s))
       or (l.vendor_status = %(vendor_timed_out)s and l.query_recvtime > now() - make_interval(secs => %(since_seconds)s)))
order by l.send_recvtime
