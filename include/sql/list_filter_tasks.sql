-- The screening page's task list, newest first: each task and its batchid's verdicts now (its batches'
-- progress comes from task_progress.sql).
select t.id, t.batchid, t.creator, t.status, s.name as status_name, s.name_zh as status_label, t.step,
       t.totalnum, t.createtime, t.runbegintime, t.runendtime, t.dag_run_id, t.message,
       v.valid, v.invalid, v.unknown
from call_filter_task t
left join call_filter_dict s on s.dict_type = 'task_status' and s.code = t.status::text
left join lateral (
    select count(*) filter (where c.valid_status = %(verdict_valid)s) as valid,
           count(*) filter (where c.valid_status = %(verdict_invalid)s) as invalid,
           count(*) filter (where c.valid_status = %(verdict_unknown)s) as unknown
    from case_tel c where c.batchid = t.batchid
) v on true
order by t.id desc
limit %(limit)s
