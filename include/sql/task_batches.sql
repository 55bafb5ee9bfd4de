-- A task's page: one row per batch (call_filter_batch_progress) with its status, vendor task, send and query
-- times and its outcome counts by the verdict rules (as summary_batches.sql counts them).
select p.batch_order, p.totalnum, p.status, p.status_name, s.name_zh as status_label, p.attempt,
       p.task_id as vendor_task_id, p.vendor_status, p.send_begintime, p.send_recvtime, p.send_seconds,
       p.query_begintime, p.query_recvtime, p.query_seconds, p.send_res_suminfo, p.query_res_suminfo,
       count(q.id) filter (where r.verdict = %(verdict_valid)s) as valid,
       count(q.id) filter (where r.verdict = %(verdict_invalid)s) as invalid,
       count(q.id) filter (where coalesce(r.verdict, %(verdict_unknown)s) = %(verdict_unknown)s and q.id is not null) as unknown
from call_filter_batch_progress p
left join call_filter_dict s on s.dict_type = 'batch_status' and s.code = p.status::text
left join call_filter_send_queryres q on q.filter_send_batch_id = p.filter_send_batch_id
left join call_filter_dict r on r.dict_type = 'verdict_rule' and r.code = q.call_status
where p.filter_task_id = %(filter_task_id)s
group by p.filter_send_batch_id, p.batch_order, p.totalnum, p.status, p.status_name, s.name_zh, p.attempt,
         p.task_id, p.vendor_status, p.send_begintime, p.send_recvtime, p.send_seconds, p.query_begintime,
         p.query_recvtime, p.query_seconds, p.send_res_suminfo, p.query_res_suminfo
order by p.batch_order
