-- Malformed numbers are invalid at once and never sent.
update case_tel t
set valid_status = %(verdict_invalid)s, valid_reason = %(reason_malformed_number)s, valid_checked_at = now()
from plan_numbers n
where n.telid = t.telid and n.rule = 'FORMAT';
-- Do-not-call rows are never sent: unknown, reason DNC.
update case_tel t
set valid_status = %(verdict_unknown)s, valid_reason = %(reason_do_not_call)s, valid_checked_at = now()
from plan_numbers n
where n.telid = t.telid and n.rule = 'DNC'
  and (t.valid_status, t.valid_reason) is distinct from (%(verdict_unknown)s, %(reason_do_not_call)s);
-- Screened often enough: left alone with reason UNREACHABLE_MAX.
update case_tel t
set valid_reason = %(reason_screening_exhausted)s, valid_checked_at = now()
from plan_numbers n
where n.telid = t.telid and n.rule = 'EXHAUSTED' and t.valid_reason is distinct from %(reason_screening_exhausted)s;
-- Every row to dial counts one more screening.
update case_tel t
set screen_attempts = t.screen_attempts + 1, last_screened_at = now()
from plan_numbers n
where n.telid = t.telid and n.rule = 'DIAL';

insert into call_filter_send_batch (status, filter_task_id, batch_order, totalnum, creator)
select %(batch_planned)s, %(filter_task_id)s, (seq - 1) / %(batch_size)s + 1, count(*), %(creator)s
from plan_phones
group by 3
order by 3;

-- Every row to screen gets a detail row in the batch where its number is dialed. In number order: each index
-- of the table then grows at its end (a million rows in random order took half again as long).
insert into call_filter_send_detail (filter_send_batch_id, telid, telno, phone, record_id, creator)
select b.id, n.telid, n.telno, n.phone, p.nid::text, %(creator)s
from plan_numbers n
join plan_phones p on p.phone = n.phone and n.rule = 'DIAL'
join call_filter_send_batch b
  on b.filter_task_id = %(filter_task_id)s and b.batch_order = (p.seq - 1) / %(batch_size)s + 1
order by p.seq, n.telid;

update call_filter_task set step = greatest(step, %(step_planned)s) where id = %(filter_task_id)s;
