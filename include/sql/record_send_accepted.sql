update call_filter_send_batch_log
set task_id = %(task_id)s, send_recvflag = %(flag_done)s, send_recvtime = now(),
    send_res_suminfo = concat_ws('; ', case when attempt > 1 then send_res_suminfo end, %(suminfo)s::text),
    accepted = %(accepted)s, rejected = %(rejected)s, message = null
where id = %(log_id)s;

update call_filter_send_detail set call_info = 'ACCEPTED'
where filter_send_batch_id = %(batch_id)s and record_id = any(%(nids)s);

-- Sent under an answer that did not say which numbers it accepted: a result decides, nothing re-dials them.
update call_filter_send_detail set call_info = 'SENT'
where filter_send_batch_id = %(batch_id)s and record_id = any(%(unknown_nids)s);

update call_filter_send_detail d set call_info = 'REJECTED:' || r.reason
from unnest(%(rejected_nids)s::text[], %(rejected_reasons)s::text[]) as r(nid, reason)
where d.filter_send_batch_id = %(batch_id)s and d.record_id = r.nid;

update call_filter_send_batch set status = %(batch_sent)s where id = %(batch_id)s
