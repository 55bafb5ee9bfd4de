-- The summary's batches sheet: each batch's durations (call_filter_batch_progress) and outcome counts,
-- counted per batch first, then joined to its one progress row.
select p.batch_order, p.totalnum, p.task_id as vendor_task_id, p.send_res_suminfo, p.send_seconds,
       p.query_seconds, p.vendor_status, p.query_res_suminfo,
       coalesce(c.valid, 0) as valid, coalesce(c.invalid, 0) as invalid, coalesce(c.unknown, 0) as unknown
from call_filter_batch_progress p
left join (
    select q.filter_send_batch_id,
           count(*) filter (where r.verdict = %(verdict_valid)s) as valid,
           count(*) filter (where r.verdict = %(verdict_invalid)s) as invalid,
           count(*) filter (where coalesce(r.verdict, %(verdict_unknown)s) = %(verdict_unknown)s) as unknown
    from call_filter_send_batch b
    join call_filter_send_queryres q on q.filter_send_batch_id = b.id
    left join call_filter_dict r on r.dict_type = 'verdict_rule' and r.code = q.call_status
    where b.filter_task_id = %(filter_task_id)s
    group by q.filter_send_batch_id
) c on c.filter_send_batch_id = p.filter_send_batch_id
where p.filter_task_id = %(filter_task_id)s
order by p.batch_order
