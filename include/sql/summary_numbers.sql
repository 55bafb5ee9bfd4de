select c.telid, c.telno, c.valid_status, coalesce(s.name_zh, s.name) as verdict_label, c.valid_reason,
       coalesce(vr.name_zh, cs.name_zh, vr.name) as reason_label, c.screen_attempts, c.last_screened_at,
       c.valid_checked_at
from case_tel c
left join call_filter_dict s on s.dict_type = 'valid_status' and s.code = c.valid_status::text
left join call_filter_dict vr on vr.dict_type = 'valid_reason' and vr.code = c.valid_reason
left join call_filter_dict cs on cs.dict_type = 'verdict_rule' and cs.code = c.valid_reason
where c.batchid = %(batchid)s
order by c.telid
