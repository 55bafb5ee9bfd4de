-- The screening page's task list, newest first: each task, its batches' progress
-- (call_filter_batch_progress, counted as task_progress.sql does) and its batchid's verdicts now.
select t.id, t.batchid, t.creator, t.status, s.name as status_name, s.name_zh as status_label, t.step,
       t.totalnum, t.createtime, t.runbegintime, t.runendtime, t.dag_run_id, t.message,
       coalesce(p.planned, 0) as planned, coalesce(p.sent, 0) as sent, coalesce(p.queried, 0) as queried,
       coalesce(p.applied, 0) as applied, coalesce(p.failed, 0) as failed,
       v.valid, v.invalid, v.unknown
from call_filter_task t
left join call_filter_dict s on s.dict_type = 'task_status' and s.code = t.status::text
left join lateral (
    select count(*) as planned,
           count(*) filter (where b.send_recvflag = %(flag_done)s or b.attempt > 1) as sent,
           count(*) filter (where b.query_recvflag <> %(flag_not_yet)s) as queried,
           count(*) filter (where b.status = %(batch_stored)s) as applied,
           count(*) filter (where b.status = %(batch_failed)s or b.query_recvflag = %(flag_failed)s) as failed
    from call_filter_batch_progress b where b.filter_task_id = t.id
) p on true
left join lateral (
    select count(*) filter (where c.valid_status = %(verdict_valid)s) as valid,
           count(*) filter (where c.valid_status = %(verdict_invalid)s) as invalid,
           count(*) filter (where c.valid_status = %(verdict_unknown)s) as unknown
    from case_tel c where c.batchid = t.batchid
) v on true
order by t.id desc
limit %(limit)s
