-- The batch's accepted numbers without a result yet: what a new vendor task for the batch dials. A number
-- whose record was quarantined was dialed: it is not dialed again.
select d.record_id as nid, min(d.phone) as phone
from call_filter_send_detail d
where d.filter_send_batch_id = %(batch_id)s
  and d.call_info = 'ACCEPTED'
  and not exists (
      select 1 from call_filter_send_queryres q
      where q.filter_send_batch_id = d.filter_send_batch_id and q.nid = d.record_id
  )
  and not exists (
      select 1 from call_filter_send_quarantine z
      where z.filter_send_batch_id = d.filter_send_batch_id and z.nid = d.record_id
  )
group by d.record_id
order by d.record_id
