-- A store's quarantined records replace those of the same vendor task (the batch's attempt).
delete from call_filter_send_quarantine where filter_send_batch_id = %(batch_id)s and attempt = %(attempt)s;

insert into call_filter_send_quarantine (filter_send_batch_id, attempt, nid, record, reason)
select %(batch_id)s, %(attempt)s, q.nid, q.record, q.reason
from unnest(%(nids)s::text[], %(records)s::jsonb[], %(reasons)s::text[]) as q(nid, record, reason)
