-- Malformed numbers are invalid at once and never sent.
update case_tel t
set valid_status = %(verdict_invalid)s, valid_reason = %(reason_malformed_number)s, valid_checked_at = now()
from plan_numbers n
where n.telid = t.telid and n.phone !~ '^\+?[0-9]{6,20}$';

insert into call_filter_send_batch (status, filter_task_id, batch_order, totalnum, creator)
select %(batch_planned)s, %(filter_task_id)s, (seq - 1) / %(batch_size)s + 1, count(*), %(creator)s
from plan_phones
group by 3
order by 3;

-- Every row to screen gets a detail row in the batch where its number is dialed.
insert into call_filter_send_detail (filter_send_batch_id, telid, telno, phone, record_id, creator)
select b.id, n.telid, n.telno, n.phone, p.nid::text, %(creator)s
from plan_numbers n
join plan_phones p on p.phone = n.phone
join call_filter_send_batch b
  on b.filter_task_id = %(filter_task_id)s and b.batch_order = (p.seq - 1) / %(batch_size)s + 1;

update call_filter_task set step = greatest(step, %(step_planned)s) where id = %(filter_task_id)s;
