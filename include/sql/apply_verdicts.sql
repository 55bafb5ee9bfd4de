-- Every row of the task (or of one batch of it) gets the verdict of its number, through the editable rule
-- table. BLACKLIST rejects stay unknown; a valid number is never touched; an unknown outcome never
-- replaces an earlier known verdict. Numbers without a result (not dialed) are left as they are.
with outcome as (
    select d.telid,
           case when d.call_info = 'REJECTED:BLACKLIST' then %(verdict_unknown)s
                when d.call_info = 'REJECTED:FORMAT' then %(verdict_invalid)s
                else coalesce(vs.code::smallint, %(verdict_unknown)s) end as status,
           case when d.call_info like 'REJECTED:%%' then substr(d.call_info, 10)
                else q.call_status end as reason
    from call_filter_send_batch b
    join call_filter_send_detail d on d.filter_send_batch_id = b.id
    left join call_filter_send_queryres q on q.filter_send_batch_id = b.id and q.nid = d.record_id
    left join call_filter_dict r on r.dict_type = 'verdict_rule' and r.code = q.call_status
    left join call_filter_dict vs on vs.dict_type = 'valid_status' and vs.name = r.name
    where b.filter_task_id = %(filter_task_id)s
      and (%(batch_id)s::bigint is null or b.id = %(batch_id)s::bigint)
      and (q.id is not null or d.call_info like 'REJECTED:%%')
)
update case_tel t
set valid_status = o.status, valid_reason = o.reason, valid_checked_at = now()
from outcome o
where t.telid = o.telid
  and t.valid_status <> %(verdict_valid)s
  and (o.status <> %(verdict_unknown)s or t.valid_status = %(verdict_unknown)s)
  and (t.valid_status, t.valid_reason) is distinct from (o.status, o.reason)
