-- Every row of the task (or of one batch of it) gets the verdict of its number, through the editable rule
-- table. BLACKLIST rejects stay unknown; a valid number is only touched by a known outcome of a screening
-- planned after its verdict (CALLFILTER_VALID_RESCREEN_AGE); an unknown outcome never
-- replaces an earlier known verdict. Numbers without a result (not dialed) are left as they are. A rule's
-- verdict is its code (call_filter_dict.verdict), never a label. A number still unknown after its last
-- screening allowed (screen_attempts reached CALLFILTER_RESCREEN_MAX) gets reason UNREACHABLE_MAX.
-- For one batch, its results are gathered first (materialized) and case_tel is read through its primary
-- key for just their rows: the cost of a store stays that of its batch, never of the whole case list.
with result as materialized (
    select d.telid,
           case when d.call_info = 'REJECTED:BLACKLIST' then %(verdict_unknown)s
                when d.call_info = 'REJECTED:FORMAT' then %(verdict_invalid)s
                else coalesce(r.verdict, %(verdict_unknown)s) end as status,
           case when d.call_info like 'REJECTED:%%' then substr(d.call_info, 10)
                else q.call_status end as reason,
           d.call_info like 'REJECTED:%%' as rejected
    from call_filter_send_batch b
    join call_filter_send_detail d on d.filter_send_batch_id = b.id
    left join call_filter_send_queryres q on q.filter_send_batch_id = b.id and q.nid = d.record_id
    left join call_filter_dict r on r.dict_type = 'verdict_rule' and r.code = q.call_status
    where b.filter_task_id = %(filter_task_id)s
      and (%(batch_id)s::bigint is null or b.id = %(batch_id)s::bigint)
      and (q.id is not null or d.call_info like 'REJECTED:%%')
),
-- The reason as the row gets it (UNREACHABLE_MAX for a number screened often enough): read from the row
-- being updated itself, so case_tel is joined once.
outcome as (
    select o.telid, o.status, o.reason,
           o.status = %(verdict_unknown)s and not o.rejected as exhaustible
    from result o
)
update case_tel t
set valid_status = o.status,
    valid_reason = case when o.exhaustible and t.screen_attempts >= %(rescreen_max)s
                        then %(reason_screening_exhausted)s else o.reason end,
    valid_checked_at = now()
from outcome o
where t.telid = o.telid
  and (t.valid_status <> %(verdict_valid)s
       or (o.status <> %(verdict_unknown)s and t.valid_checked_at < t.last_screened_at))
  and (o.status <> %(verdict_unknown)s or t.valid_status = %(verdict_unknown)s)
  and (t.valid_status, t.valid_reason) is distinct from
      (o.status, case when o.exhaustible and t.screen_attempts >= %(rescreen_max)s
                      then %(reason_screening_exhausted)s else o.reason end)
  and (%(batch_id)s::bigint is null or t.telid = any(array(select r.telid from result r)))
