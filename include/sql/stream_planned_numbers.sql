select b.batch_order, d.record_id as nid, d.phone, string_agg(d.telid::text, ' ' order by d.telid) as telids,
       min(d.telno) as telno
from call_filter_send_batch b
join call_filter_send_detail d on d.filter_send_batch_id = b.id
where b.filter_task_id = %(filter_task_id)s
group by b.batch_order, d.record_id, d.phone
order by b.batch_order, d.record_id
