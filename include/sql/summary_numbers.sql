select c.telid, c.telno, s.name as verdict, c.valid_reason, c.valid_checked_at
from case_tel c
left join call_filter_dict s on s.dict_type = 'valid_status' and s.code = c.valid_status::text
where c.batchid = %(batchid)s
order by c.telid
