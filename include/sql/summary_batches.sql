select l.batch_order, l.totalnum, l.task_id as vendor_task_id, l.send_res_suminfo,
       extract(epoch from l.send_recvtime - l.send_begintime) as send_seconds,
       extract(epoch from l.query_recvtime - l.send_recvtime) as query_seconds,
       l.vendor_status, l.query_res_suminfo,
       count(q.id) filter (where r.verdict = %(verdict_valid)s) as valid,
       count(q.id) filter (where r.verdict = %(verdict_invalid)s) as invalid,
       count(q.id) filter (where coalesce(r.verdict, %(verdict_unknown)s) = %(verdict_unknown)s and q.id is not null) as unknown
from call_filter_send_batch_log l
left join call_filter_send_queryres q on q.filter_send_batch_id = l.filter_send_batch_id
left join call_filter_dict r on r.dict_type = 'verdict_rule' and r.code = q.call_status
where l.filter_task_id = %(filter_task_id)s
group by l.id
order by l.batch_order
