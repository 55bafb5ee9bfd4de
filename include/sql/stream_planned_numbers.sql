-- A task's planned numbers, one row per number in batch order: (batch_order, nid, phone, telno, telids).
select b.batch_order, d.record_id as nid, d.phone, min(d.telno) as telno,
       string_agg(d.telid::text, ' ' order by d.telid) as telids
from call_filter_send_batch b
join call_filter_send_detail d on d.filter_send_batch_id = b.id
where b.filter_task_id = %(filter_task_id)s
group by b.batch_order, d.record_id, d.phone
order by b.batch_order, d.record_id
