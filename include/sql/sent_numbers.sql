-- The numbers sent in a batch, by nid: what a result record must name.
select record_id as nid, min(phone) as phone
from call_filter_send_detail
where filter_send_batch_id = %(batch_id)s
group by record_id
